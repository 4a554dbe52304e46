"""Platform adapters: each translates its platform's payloads to `Invocation`s and `Reply`s back."""

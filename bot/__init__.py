"""Assembly: settings, wiring, the `dealbot` CLI, the ASGI web app."""

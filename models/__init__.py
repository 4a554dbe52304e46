"""The domain: tables, rules and queries. Knows nothing of chat platforms."""

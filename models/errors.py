"""Domain errors carry a message key and parameters; `commands/` words them per locale."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A rule said no. Nothing was changed; the user gets `key` worded in their language."""

    def __init__(self, key: str, /, **params: Any) -> None:
        super().__init__(key)
        self.key = key
        self.params = params

    def __repr__(self) -> str:
        return f"DomainError({self.key!r}, {self.params!r})"

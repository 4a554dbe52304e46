"""Secrets the database keeps (a platform's tokens) sealed with the deployment's key,
DEALBOT_SECRET_KEY, so a copy of the database (a backup, a dump, a disk) holds no usable
credential without it. Fernet (AES-128-CBC and an HMAC-SHA256 tag) under keys derived from the
secret with HKDF: one for sealing, another for signing, so neither use weakens the other."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

# Long enough that guessing it is hopeless: `secrets.token_urlsafe(32)` gives 43 characters.
MIN_SECRET_LENGTH = 32
MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


class SealBroken(Exception):
    """A sealed value that this key did not seal, or that was changed since."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"dealbot", info=purpose).derive(
        secret.encode()
    )


def weak_secret(secret: str | None) -> str | None:
    """Why `secret` cannot be the deployment's key, or None when it can."""
    if not secret:
        return f"DEALBOT_SECRET_KEY is not set; make one with {MAKE_ONE}"
    if len(secret) < MIN_SECRET_LENGTH:
        return (
            f"DEALBOT_SECRET_KEY is {len(secret)} characters, fewer than {MIN_SECRET_LENGTH}; "
            f"make one with {MAKE_ONE}"
        )
    return None


class Seal:
    def __init__(self, secret: str) -> None:
        problem = weak_secret(secret)
        if problem is not None:
            raise ValueError(problem)
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret, b"sealed credentials")))
        self._signing = _derive(secret, b"signed values")

    def seal(self, data: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(data, default=str).encode()).decode()

    def open(self, sealed: str) -> dict[str, Any]:
        try:
            data = json.loads(self._fernet.decrypt(sealed.encode()))
        except (InvalidToken, ValueError) as error:
            raise SealBroken("sealed with another DEALBOT_SECRET_KEY, or changed") from error
        if not isinstance(data, dict):
            raise SealBroken("not a sealed record")
        return data

    def sign(self, text: str) -> str:
        digest = hmac.new(self._signing, text.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def signed(self, text: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(text), signature)

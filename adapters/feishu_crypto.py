"""Feishu / Lark event subscription security (事件订阅的加密与签名), as docs/feishu.md describes it.

A request is signed: `X-Lark-Signature` = hex SHA-256 of `X-Lark-Request-Timestamp` +
`X-Lark-Request-Nonce` + the Encrypt Key + the raw body. The body is `{"encrypt": "<base64>"}`: a
16-byte IV followed by AES-256-CBC ciphertext (PKCS#7 to 16-byte blocks) under the SHA-256 of the
Encrypt Key. Inside, the event carries the app's Verification Token.

The signature and the timestamp's age are checked on the raw bytes before the body is parsed or
decrypted. Every failed check raises a `Rejected` that says which HTTP status to answer; none of
them carries the plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from adapters.base import BadCiphertext, BadSignature, Rejected, StaleTimestamp, unix_seconds

MAX_AGE = 300.0  # seconds; older (or further in the future) requests are refused as replays
TIMESTAMP = "x-lark-request-timestamp"
NONCE = "x-lark-request-nonce"
SIGNATURE = "x-lark-signature"


class BadToken(Rejected):
    status = 401


class BadJson(Rejected):
    status = 400


def aes_key(encrypt_key: str) -> bytes:
    """AES-256's key is the SHA-256 of the Encrypt Key the console shows, whatever its length."""
    return hashlib.sha256(encrypt_key.encode()).digest()


def loads(data: bytes | str) -> dict[str, Any]:
    """A JSON object from the network; anything else is refused."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        raise BadJson("body is not JSON") from None
    if not isinstance(value, dict):
        raise BadJson("body is not a JSON object")
    return value


class FeishuCrypto:
    """One app's event keys: the Encrypt Key and the Verification Token.

    `now` and `max_age` decide which timestamps are fresh; a test replaying an old recording moves
    `now` instead of switching the check off."""

    def __init__(
        self,
        encrypt_key: str,
        verification_token: str,
        *,
        now: Callable[[], float] = time.time,
        max_age: float = MAX_AGE,
    ) -> None:
        if not encrypt_key:
            raise ValueError("FEISHU_ENCRYPT_KEY is empty")
        self.encrypt_key = encrypt_key
        self.token = verification_token
        self.key = aes_key(encrypt_key)
        self.now = now
        self.max_age = max_age

    def signature(self, timestamp: str, nonce: str, body: bytes) -> str:
        joined = timestamp.encode() + nonce.encode() + self.encrypt_key.encode() + body
        return hashlib.sha256(joined).hexdigest()

    def verify(self, headers: Mapping[str, str], body: bytes) -> None:
        """Signature first (constant time), then the timestamp's age."""
        timestamp, nonce = headers.get(TIMESTAMP, ""), headers.get(NONCE, "")
        signature = headers.get(SIGNATURE, "")
        if not (timestamp and nonce and signature):
            raise BadSignature("missing X-Lark-Signature, timestamp or nonce")
        expected = self.signature(timestamp, nonce, body)
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise BadSignature("bad X-Lark-Signature")
        sent = unix_seconds(timestamp)
        if sent is None:
            raise StaleTimestamp("timestamp is not a whole number of seconds")
        if abs(self.now() - sent) > self.max_age:
            raise StaleTimestamp("timestamp outside the accepted window")

    def encrypt(self, message: bytes, *, iv: bytes | None = None) -> str:
        """The `encrypt` value Feishu would send for `message` (used by tests and fakes)."""
        iv = os.urandom(16) if iv is None else iv
        padder = padding.PKCS7(128).padder()
        padded = padder.update(message) + padder.finalize()
        encryptor = Cipher(algorithms.AES(self.key), modes.CBC(iv)).encryptor()
        return base64.b64encode(iv + encryptor.update(padded) + encryptor.finalize()).decode()

    def decrypt(self, encrypted: str) -> bytes:
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise BadCiphertext("ciphertext is not base64") from None
        if len(raw) < 32 or len(raw) % 16:
            raise BadCiphertext("ciphertext is not an IV and whole AES blocks")
        decryptor = Cipher(algorithms.AES(self.key), modes.CBC(raw[:16])).decryptor()
        padded = decryptor.update(raw[16:]) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        try:
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise BadCiphertext("bad padding") from None

    def open(self, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """The event inside a signed request: verified, then decrypted, then its token checked.

        One exception: Feishu's URL check (`url_verification`) may come unsigned (the official SDKs
        do not check its signature). It is answered only when it decrypts under our Encrypt Key and
        carries our Verification Token, and an answer to it touches nothing but the challenge."""
        signed = SIGNATURE in headers
        if signed:
            self.verify(headers, body)
        envelope = loads(body)
        encrypted = envelope.get("encrypt")
        if not isinstance(encrypted, str):
            raise BadCiphertext("no encrypt field: turn on the Encrypt Key in the console")
        try:
            event = loads(self.decrypt(encrypted).decode())
        except UnicodeDecodeError:
            raise BadCiphertext("plaintext is not UTF-8") from None
        if not signed and event.get("type") != "url_verification":
            raise BadSignature("missing X-Lark-Signature")
        header = event.get("header")
        token = header.get("token") if isinstance(header, dict) else event.get("token")
        if not (
            isinstance(token, str)
            and self.token
            and hmac.compare_digest(token.encode(), self.token.encode())
        ):
            raise BadToken("verification token does not match")
        return event

    def seal(
        self, event: dict[str, Any], *, timestamp: str | None = None, nonce: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """Headers and body of `event` as Feishu sends it (used by tests and fakes)."""
        body = json.dumps({"encrypt": self.encrypt(json.dumps(event).encode())}).encode()
        timestamp = timestamp or str(int(self.now()))
        nonce = nonce or str(int.from_bytes(os.urandom(4), "big"))
        return (
            {
                "Content-Type": "application/json",
                "X-Lark-Request-Timestamp": timestamp,
                "X-Lark-Request-Nonce": nonce,
                "X-Lark-Signature": self.signature(timestamp, nonce, body),
            },
            body,
        )

"""WeCom's callback encryption (企业微信 消息加解密), to the protocol in ../shared/platforms.md.

SHA-1 signature over the sorted token, timestamp, nonce and ciphertext; AES-256-CBC with the key's
first 16 bytes as IV; PKCS#7 padding to 32-byte blocks; a plaintext of 16 random bytes, a 4-byte
length, the message and the receive id. Every failed check raises a `Rejected` that says
which HTTP status to answer, and none of them carries the plaintext.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import struct
import time
from collections.abc import Callable
from xml.etree.ElementTree import Element

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from adapters.base import BadCiphertext, BadSignature, Rejected, StaleTimestamp, unix_seconds

BLOCK = 32  # WeCom pads to 32 bytes, not AES's 16: `cryptography`'s PKCS7(128) would be wrong here
MAX_AGE = 300.0  # seconds; older (or further in the future) callbacks are refused as replays


class WrongReceiver(Rejected):
    status = 401


class BadXml(Rejected):
    status = 400


def pad(data: bytes) -> bytes:
    """PKCS#7 to a 32-byte block: 1..32 bytes, each holding the pad length."""
    amount = BLOCK - len(data) % BLOCK
    return data + bytes([amount]) * amount


def unpad(data: bytes) -> bytes:
    """Undo `pad`, refusing anything that is not exactly valid padding."""
    if not data:
        raise BadCiphertext("empty plaintext")
    amount = data[-1]
    if not 1 <= amount <= min(BLOCK, len(data)) or data[-amount:] != bytes([amount]) * amount:
        raise BadCiphertext("bad padding")
    return data[:-amount]


def parse_xml(data: bytes | str) -> Element:
    """Parse XML from the network with DTDs, entities and external references refused."""
    try:
        root: Element = fromstring(data, forbid_dtd=True, forbid_entities=True,
                                   forbid_external=True)
    except (DefusedXmlException, SyntaxError, ValueError) as error:  # ParseError is a SyntaxError
        raise BadXml(f"unacceptable XML: {type(error).__name__}") from None
    return root


def xml_fields(element: Element) -> dict[str, str]:
    """The element's direct children as name → text (WeCom's messages are flat)."""
    return {child.tag: (child.text or "") for child in element}


def cdata(text: str) -> str:
    """Text as a CDATA section, splitting any `]]>` so the section cannot be closed early."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def aes_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key behind the 43-character EncodingAESKey WeCom shows."""
    try:
        key = base64.b64decode(encoding_aes_key + "=", validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("WECOM_ENCODING_AES_KEY is not valid base64") from None
    if len(key) != 32:
        raise ValueError("WECOM_ENCODING_AES_KEY must be the 43 characters WeCom shows")
    return key


class WeComCrypto:
    """One self-built app's callback keys: Token, EncodingAESKey and our CorpID (the receive id).

    `now` and `max_age` decide which timestamps are fresh; a test replaying an old recording moves
    `now` instead of switching the check off."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str, *,
                 now: Callable[[], float] = time.time, max_age: float = MAX_AGE) -> None:
        self.token = token
        self.key = aes_key(encoding_aes_key)  # a mistyped key fails at start-up, not on a message
        self.receive_id = receive_id
        self.now = now
        self.max_age = max_age

    def _cipher(self) -> Cipher[modes.CBC]:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        joined = "".join(sorted([self.token, timestamp, nonce, encrypted]))
        return hashlib.sha1(joined.encode()).hexdigest()

    def verify(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Signature first (constant time), then the timestamp's age."""
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise BadSignature("bad msg_signature")
        sent = unix_seconds(timestamp)
        if sent is None:
            raise StaleTimestamp("timestamp is not a whole number of seconds")
        if abs(self.now() - sent) > self.max_age:
            raise StaleTimestamp("timestamp outside the accepted window")

    def encrypt(self, message: bytes, *, random16: bytes | None = None) -> str:
        """The base64 ciphertext WeCom would send for `message` (and our passive replies)."""
        random16 = os.urandom(16) if random16 is None else random16
        plain = random16 + struct.pack(">I", len(message)) + message + self.receive_id.encode()
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(pad(plain)) + encryptor.finalize()).decode()

    def decrypt(self, encrypted: str) -> bytes:
        """The message inside a ciphertext, after checking padding, length and receive id."""
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError):
            raise BadCiphertext("ciphertext is not base64") from None
        if not raw or len(raw) % 16:
            raise BadCiphertext("ciphertext is not a whole number of AES blocks")
        decryptor = self._cipher().decryptor()
        plain = unpad(decryptor.update(raw) + decryptor.finalize())
        if len(plain) < 20:
            raise BadCiphertext("plaintext too short")
        (length,) = struct.unpack(">I", plain[16:20])
        if 20 + length > len(plain):
            raise BadCiphertext("message length runs past the plaintext")
        message, receive_id = plain[20:20 + length], plain[20 + length:]
        if not hmac.compare_digest(receive_id, self.receive_id.encode()):
            raise WrongReceiver("receive id is not our CorpID")
        return message

    def open(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> bytes:
        """Verify, then decrypt: nothing is decrypted before the signature holds."""
        self.verify(signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def seal(self, reply_xml: str, *, timestamp: str | None = None,
             nonce: str | None = None) -> str:
        """A passive reply: `reply_xml` encrypted, signed and wrapped as WeCom expects it."""
        timestamp = timestamp or str(int(self.now()))
        nonce = nonce or str(int.from_bytes(os.urandom(4), "big"))
        encrypted = self.encrypt(reply_xml.encode())
        signature = self.signature(timestamp, nonce, encrypted)
        return (f"<xml><Encrypt>{cdata(encrypted)}</Encrypt>"
                f"<MsgSignature>{cdata(signature)}</MsgSignature>"
                f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>")


def passive_text(*, to_user: str, corp_id: str, content: str, create_time: int) -> str:
    """The plaintext XML of a passive text reply, to hand to `WeComCrypto.seal`."""
    return (f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
            f"<FromUserName>{cdata(corp_id)}</FromUserName>"
            f"<CreateTime>{create_time}</CreateTime><MsgType>{cdata('text')}</MsgType>"
            f"<Content>{cdata(content)}</Content></xml>")

"""Oversized and slow request bodies on every route of the app as deployed (Slack, Telegram and
WeCom configured): a declared length over the limit is refused before a byte of the body is read, a
chunked body as soon as it passes the limit, a body that never finishes after the body timeout —
and nothing is stored. Raw sockets, so the test controls exactly what is sent and when."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.app import Bot, build
from bot.settings import Settings
from bot.web import create_app
from models.clock import FixedClock
from models.db import create_schema
from tests.attacks.conftest import stored
from tests.fakes.asgi import LiveServer
from tests.test_wecom import AES_KEY, CORP, TOKEN

LIMIT = 64 * 1024  # small, so the tests move little data; the default is 1 MiB
ROUTES = [
    "/slack/events",
    "/telegram/webhook",
    "/wecom/callback?msg_signature=x&timestamp=1&nonce=1",
    "/healthz",
    "/no/such/route",
]


@pytest.fixture
def deployed(tmp_path: Path, clock: FixedClock) -> Iterator[tuple[Bot, LiveServer]]:
    settings = Settings.model_validate(
        {
            "SLACK_BOT_TOKEN": "xoxb-test",
            "SLACK_SIGNING_SECRET": "secret",
            "SLACK_API_URL": "http://127.0.0.1:9/api/",
            "TELEGRAM_BOT_TOKEN": "123:abc",
            "TELEGRAM_WEBHOOK_SECRET": "secret",
            "TELEGRAM_WEBHOOK_URL": "https://bot.example.com/telegram/webhook",
            "TELEGRAM_API_URL": "http://127.0.0.1:9",
            "WECOM_CORP_ID": CORP,
            "WECOM_SECRET": "s",
            "WECOM_TOKEN": TOKEN,
            "WECOM_ENCODING_AES_KEY": AES_KEY,
            "WECOM_API_URL": "http://127.0.0.1:9",
            "DEALBOT_MAX_BODY_BYTES": LIMIT,
            "DEALBOT_BODY_TIMEOUT_SECONDS": 1,
        }
    )
    bot = build(settings, clock=clock, database_url=f"sqlite:///{tmp_path / 'b.db'}", migrate=False)
    create_schema(bot.engine)
    server = LiveServer(create_app(bot))
    yield bot, server
    server.close()
    bot.engine.dispose()


def exchange(
    url: str, path: str, headers: dict[str, str], body: Iterable[bytes], *, wait: float = 10.0
) -> tuple[int, float]:
    """Send a request piece by piece; the status the server answers and the seconds it took."""
    parts = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((parts.hostname, parts.port), timeout=wait) as sock:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: test\r\n"
            + "".join(f"{name}: {value}\r\n" for name, value in headers.items())
            + "\r\n"
        )
        sock.sendall(head.encode())
        try:
            for piece in body:
                sock.sendall(piece)
        except OSError:
            pass  # the server answered and closed while we were still sending: the point
        answer = b""
        while b"\r\n" not in answer:
            data = sock.recv(4096)
            if not data:
                break
            answer += data
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return status, time.monotonic() - started


def chunked(total: int, size: int = 8192) -> Iterator[bytes]:
    """`total` bytes as HTTP chunks, never terminated: a body that has not ended."""
    sent = 0
    while sent < total:
        piece = min(size, total - sent)
        yield f"{piece:x}\r\n".encode() + b"x" * piece + b"\r\n"
        sent += piece


@pytest.mark.parametrize("path", ROUTES)
def test_a_declared_length_over_the_limit_is_refused_unread(
    deployed: tuple[Bot, LiveServer], path: str
) -> None:
    bot, server = deployed
    # A gigabyte announced and not one byte of it sent: a server that read the body would wait.
    status, seconds = exchange(server.url, path, {"Content-Length": str(10**9)}, [])
    assert status == 413 and seconds < 1.5
    assert stored(bot.engine) == {}


@pytest.mark.parametrize("path", ROUTES)
def test_a_chunked_body_is_refused_as_soon_as_it_passes_the_limit(
    deployed: tuple[Bot, LiveServer], path: str
) -> None:
    bot, server = deployed
    # Just over the limit, then nothing more (the body is never finished): 413, not the timeout.
    status, seconds = exchange(
        server.url, path, {"Transfer-Encoding": "chunked"}, chunked(LIMIT + 8192)
    )
    assert status == 413 and seconds < 1.5
    assert stored(bot.engine) == {}


@pytest.mark.parametrize("path", ROUTES[:3])
def test_a_body_that_never_finishes_is_refused_after_the_body_timeout(
    deployed: tuple[Bot, LiveServer], path: str
) -> None:
    bot, server = deployed
    status, seconds = exchange(server.url, path, {"Content-Length": "100"}, [b"x" * 10])
    assert status == 408 and 0.8 < seconds < 5
    assert stored(bot.engine) == {}


@pytest.mark.parametrize("length", ["abc", "-1", "1e9", "0x10"])
def test_a_malformed_length_is_a_client_error(
    deployed: tuple[Bot, LiveServer], length: str
) -> None:
    bot, server = deployed
    status, _ = exchange(server.url, "/slack/events", {"Content-Length": length}, [b"x"])
    assert 400 <= status < 500
    assert stored(bot.engine) == {}


def test_the_server_stays_healthy_after_refusing(deployed: tuple[Bot, LiveServer]) -> None:
    bot, server = deployed
    for path in ROUTES:
        exchange(server.url, path, {"Content-Length": str(10**12)}, [])
    status, _ = exchange(server.url, "/slack/events", {"Content-Length": "0"}, [])
    assert status == 401  # an empty, unsigned request is still checked and refused
    import httpx

    assert httpx.get(server.url + "/healthz", timeout=5).json()["ok"] is True

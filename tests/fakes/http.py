"""A real HTTP server on 127.0.0.1 standing in for a platform's API: it records every request and
answers from a handler the test can change (to return 429s or errors on demand)."""

from __future__ import annotations

import json
import threading
from email import policy
from email.parser import BytesParser
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    form: dict[str, str] = field(default_factory=dict)
    json: Any = None

    @property
    def name(self) -> str:
        """The API method: the last path segment (`chat.postMessage`, `sendMessage`)."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)


Handler = Callable[[Recorded], Answer]


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    """Text fields of a multipart body; file parts are kept as their size."""
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True) or b""
        fields[str(name)] = f"<{len(payload)} bytes>" if part.get_filename() else payload.decode(errors="replace")
    return fields


class FakeServer:
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[Recorded] = []
        self._changed = threading.Condition()
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                record = Recorded(method=self.command, path=parts.path,
                                  query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                                  headers={k.lower(): v for k, v in self.headers.items()}, body=body)
                content_type = self.headers.get("Content-Type", "")
                if "json" in content_type and body:
                    record.json = json.loads(body)
                elif "multipart/form-data" in content_type and body:
                    record.form = _multipart(content_type, body)
                elif "form" in content_type and body:
                    record.form = {k: v[-1] for k, v in parse_qs(body.decode()).items()}
                # Recorded before answering, so a client that has its answer finds the request recorded.
                with fake._changed:
                    fake.requests.append(record)
                    fake._changed.notify_all()
                answer = fake.handler(record)
                payload = answer.body if isinstance(answer.body, bytes) else json.dumps(answer.body).encode()
                self.send_response(answer.status)
                self.send_header("Content-Type", "application/json")
                for key, value in answer.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = _serve  # noqa: N815

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        # A short poll: shutdown() waits for it, and every test closes its fake.
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def calls(self, name: str) -> list[Recorded]:
        return [request for request in self.requests if request.name == name]

    def wait_for(self, predicate: Callable[[list[Recorded]], bool], timeout: float = 10) -> list[Recorded]:
        """Block until the recorded requests satisfy `predicate` (the adapter works after its ack)."""
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.requests), timeout=timeout):
                raise AssertionError(f"expected requests never arrived; got {[r.path for r in self.requests]}")
        return self.requests

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

"""Serving the project's ASGI app with uvicorn on a free local port, in a thread, for HTTP tests."""

from __future__ import annotations

import socket
import threading
from typing import Any

import uvicorn


class LiveServer:
    """The socket listens before the thread starts, so requests queue until uvicorn accepts them."""

    def __init__(self, app: Any) -> None:
        self.socket = socket.socket()
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(128)
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.socket.close()

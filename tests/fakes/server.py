"""Serving a fake's ASGI app over real HTTP: uvicorn on a free 127.0.0.1 port, in a thread
with its own event loop, so the test's loop and the fake never block each other; and
hanging up on a request after handling it (:class:`DropConnection`), as a platform whose
connection drops after accepting does."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send


class ThreadedServer:
    def __init__(self, app: ASGIApp, name: str) -> None:
        self.app = app
        self.name = name
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 10.0) -> int:
        """Serve the app; returns the port once it accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            loop="asyncio",
            # h11, not httptools: the fake Mastodon drops connections through h11's objects.
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,  # leave the test process's logging alone
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=self.name, daemon=True
        )
        thread.start()
        deadline = time.monotonic() + timeout
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                server.should_exit = True
                raise RuntimeError(f"{self.name} did not start")
            time.sleep(0.01)
        self._server, self._thread, self.port = server, thread, port
        return port

    def stop(self, timeout: float = 10.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        self._server = self._thread = None
        self.port = None


DROP_CONNECTION = "fake_server.drop_connection"


class DropConnection(Response):
    """Returned by a route to make the fake close the connection without answering."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        drop: Callable[[], None] = scope[DROP_CONNECTION]
        drop()
        await asyncio.sleep(0)  # let uvicorn notice the closed connection before we return


class DropConnectionSupport:
    """The outermost ASGI layer: lets a route close the client's connection unanswered.

    ASGI has no "hang up" message (an app that raises gets a 500 from uvicorn), so this reaches
    the connection's transport through uvicorn's ``send`` (the bound method of its h11
    request cycle) and puts a closer into the scope. The fake runs uvicorn with ``http="h11"``
    so that shape is known.
    """

    def __init__(self, app: Starlette) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            transport = getattr(getattr(send, "__self__", None), "transport", None)
            if transport is None:
                raise RuntimeError("the fake cannot reach uvicorn's transport to drop it")
            scope = {**scope, DROP_CONNECTION: transport.close}
        await self.app(scope, receive, send)

"""A local fake Telegram Bot API for the runs that need a real server (the chaos run): bots
cannot list what they sent, so a lost answer can never be looked up.

``POST /bot{token}/sendMessage`` (JSON ``chat_id``, ``text``) answers the Bot API's envelope:
``{"ok": true, "result": Message}`` with an increasing ``message_id`` and the chat, or
``{"ok": false, "error_code", "description"[, "parameters"]}``: 401 ``Unauthorized`` for an
unknown bot token, 400 ``Bad Request: chat not found`` for a chat the bot is not in, 429
``Too Many Requests: retry after N`` with ``parameters.retry_after``. What tests read:
:attr:`FakeTelegram.messages` (every message it sent, oldest first).

Faults (:meth:`FakeTelegram.chaos`, random per request after the token check): a 502
(nothing sent), a 429, an answer later than ``slow_seconds`` (sent), or a dropped connection
after sending (sent, no answer).
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
import time
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import DropConnection, DropConnectionSupport, ThreadedServer


@dataclass(frozen=True, slots=True)
class FakeMessage:
    message_id: int
    chat_id: str
    text: str


class FakeTelegram:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._chats: dict[str, str] = {}  # bot token -> the chat it posts to
        self._messages: list[FakeMessage] = []
        self._ids = itertools.count(1)
        self._pick: random.Random | None = None
        self._rates = (0.0, 0.0, 0.0, 0.0)
        self._slow_seconds = 0.0
        self._http = ThreadedServer(DropConnectionSupport(self._build_app()), "fake-telegram")
        self._port: int | None = None

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake Telegram is not running")
        return f"http://127.0.0.1:{self._port}"

    def __enter__(self) -> FakeTelegram:
        self._port = self._http.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._http.stop()
        self._port = None

    def add_bot(self, token: str, chat_id: str) -> None:
        with self._lock:
            self._chats[token] = chat_id

    @property
    def messages(self) -> list[FakeMessage]:
        with self._lock:
            return list(self._messages)

    def chaos(
        self,
        *,
        seed: int,
        fail: float = 0.0,
        rate_limit: float = 0.0,
        slow: float = 0.0,
        drop: float = 0.0,
        slow_seconds: float = 3.0,
    ) -> None:
        with self._lock:
            self._pick = random.Random(seed)
            self._rates = (fail, rate_limit, slow, drop)
            self._slow_seconds = slow_seconds

    def clear_faults(self) -> None:
        with self._lock:
            self._pick = None

    def _fault(self) -> str | None:
        with self._lock:
            if self._pick is None:
                return None
            roll = self._pick.random()
        for name, chance in zip(("fail", "rate_limit", "slow", "drop"), self._rates, strict=True):
            if roll < chance:
                return name
            roll -= chance
        return None

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[Route("/bot{token}/sendMessage", self._send_message, methods=["POST"])]
        )

    async def _send_message(self, request: Request) -> Response:
        with self._lock:
            chat = self._chats.get(request.path_params["token"])
        if chat is None:
            return _error(401, "Unauthorized")
        body = await request.json()
        if str(body.get("chat_id")) != chat:
            return _error(400, "Bad Request: chat not found")
        fault = self._fault()
        if fault == "fail":
            return _error(502, "Bad Gateway")
        if fault == "rate_limit":
            return _error(429, "Too Many Requests: retry after 2", {"retry_after": 2})
        with self._lock:
            message = FakeMessage(next(self._ids), chat, str(body.get("text") or ""))
            self._messages.append(message)
        if fault == "slow":
            await asyncio.sleep(self._slow_seconds)
        if fault == "drop":
            return DropConnection()
        return JSONResponse(
            {
                "ok": True,
                "result": {
                    "message_id": message.message_id,
                    "date": int(time.time()),
                    "chat": {"id": int(chat), "type": "channel", "title": "Chaos"},
                    "text": message.text,
                },
            }
        )


def _error(code: int, description: str, parameters: dict[str, int] | None = None) -> Response:
    body: dict[str, object] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return JSONResponse(body, status_code=code)

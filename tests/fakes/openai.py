"""A local fake OpenAI-compatible server that speaks the chat-completions wire format.

A Starlette app served by uvicorn on a free 127.0.0.1 port in a thread of its own, so the
real ``AsyncOpenAI`` client reaches it over real HTTP through Herald's transport::

    with FakeOpenAI() as fake:
        settings = base.model_copy(update={"openai_base_url": fake.base_url, ...})
        fake.queue(Text('{"variants": [...]}'), Error(500))
        ...
        assert fake.requests[0].body["stream"] is True

What it does like api.openai.com (platform.openai.com/docs/api-reference/chat):

- ``POST /v1/chat/completions`` needs ``Authorization: Bearer <key>``, else 401 with the
  error body ``{"error": {"message", "type": "invalid_request_error", "param": null,
  "code": "invalid_api_key"}}``. A body without ``model`` or ``messages`` is a 400 of the
  same shape.
- Without ``stream`` it answers a ``chat.completion`` object (``id``, ``created``, ``model``,
  ``choices[0].message`` with ``content``, ``refusal``, ``annotations``, ``finish_reason``,
  ``usage`` with prompt/completion/total tokens and their details, ``system_fingerprint``).
- With ``"stream": true`` it answers ``text/event-stream``: ``data: {chat.completion.chunk}``
  lines (first the role, then the content a few characters at a time, then the
  ``finish_reason``), with ``stream_options.include_usage`` a last chunk whose ``choices`` is
  empty and ``usage`` is set (``null`` on the others), then ``data: [DONE]``.
- A refusal (structured outputs) is ``content: null`` and ``refusal`` set, streamed as
  ``delta.refusal``.
- Every answer carries ``x-ratelimit-limit-*``, ``x-ratelimit-remaining-*`` and
  ``x-ratelimit-reset-*`` for requests and tokens (durations like ``6m0s``, ``120ms``) and
  ``x-request-id``. Over its own requests-per-minute limit (``rpm``) it answers 429 with
  ``retry-after`` and ``{"error": {"type": "requests", "code": "rate_limit_exceeded"}}``.
- Tokens are counted as about four characters each, as OpenAI's rule of thumb has it.

Tests script answers with :meth:`FakeOpenAI.queue` (taken in order, one per request) or a
``responder`` (called with the request body when the queue is empty); by default it answers
something fitting the request's schema. ``hold`` keeps matching requests waiting until
``release`` is set (``held`` is set while one waits).
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.fakes.server import ThreadedServer

API_KEY = "sk-test-herald-fake"
MODEL = "gpt-4o-mini"
SNAPSHOT = "gpt-4o-mini-2024-07-18"
# OpenAI's rule of thumb (help.openai.com, "What are tokens and how to count them?").
CHARACTERS_PER_TOKEN = 4
STREAM_PIECE = 7  # characters per content chunk when streaming
WINDOW_SECONDS = 60.0


@dataclass(frozen=True)
class Text:
    """An answer: ``content`` as the assistant message (JSON text for structured output)."""

    content: str
    finish_reason: str = "stop"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Refusal:
    words: str


@dataclass(frozen=True)
class Error:
    status: int
    message: str = "The server had an error while processing your request. Sorry about that!"
    type: str = "server_error"
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """No answer for ``seconds`` (longer than the client's timeout)."""

    seconds: float


@dataclass(frozen=True)
class Broken:
    """A 200 whose body is not JSON (a proxy's page)."""

    body: str = "<html>Bad gateway</html>"


Reply = Text | Refusal | Error | Hang | Broken


def rate_limited(retry_after: float, limit: str = "requests") -> Error:
    """A 429 as OpenAI sends it when a limit is reached."""
    return Error(
        429,
        f"Rate limit reached for {MODEL} on {limit} per min. Please try again in {retry_after:g}s.",
        type=limit,
        code="rate_limit_exceeded",
        headers={"retry-after": f"{retry_after:g}"},
    )


@dataclass(frozen=True)
class Recorded:
    headers: dict[str, str]
    body: dict[str, Any]

    @property
    def system(self) -> str:
        return str(self.body["messages"][0]["content"])

    @property
    def user(self) -> Any:
        """The first user message: its JSON object when it is one, else its content."""
        content = next(m["content"] for m in self.body["messages"] if m["role"] == "user")
        if isinstance(content, list):
            return content
        try:
            return json.loads(content)
        except ValueError:
            return content


def tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / CHARACTERS_PER_TOKEN))


def posts(*texts: str | tuple[str, list[str]]) -> str:
    """``{"variants": [...]}`` as the posts schema has it, from texts or (text, thread)."""
    variants = [
        {"text": t, "thread": []} if isinstance(t, str) else {"text": t[0], "thread": t[1]}
        for t in texts
    ]
    return json.dumps({"variants": variants})


def default_reply(body: dict[str, Any]) -> Reply:
    """Something fitting what was asked: posts, a plan, or alt text."""
    schema = (body.get("response_format") or {}).get("json_schema", {}).get("schema", {})
    user = Recorded({}, body).user
    properties = schema.get("properties", {})
    if "variants" in properties:
        count = user.get("variants", 1) if isinstance(user, dict) else 1
        topic = str(user.get("brief") or user.get("text") or "news")[:40]
        return Text(posts(*(f"Variant {i + 1}: {topic}" for i in range(count))))
    if "posts" in properties:
        count = min(3, user.get("max_posts", 3))
        return Text(json.dumps({"posts": [
            {"brief": f"Post {i + 1} of the plan", "publish_at": ""} for i in range(count)
        ]}))  # fmt: skip
    return Text("A small red rectangle.")


class FakeOpenAI:
    def __init__(self, *, rpm: int = 10_000, tpm: int = 2_000_000) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.requests: list[Recorded] = []
        self.responder: Callable[[dict[str, Any]], Reply] | None = None
        self.hold: Callable[[dict[str, Any]], bool] | None = None
        self.held = threading.Event()
        self.release = threading.Event()
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._window: deque[float] = deque()
        self._server = ThreadedServer(
            Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])]),
            "fake-openai",
        )

    @property
    def base_url(self) -> str:
        assert self._server.port is not None, "start the fake first"
        return f"http://127.0.0.1:{self._server.port}/v1"

    def start(self) -> FakeOpenAI:
        self._server.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.stop()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._script.clear()
            self._window.clear()
        self.responder = self.hold = None
        self.held.clear()
        self.release.clear()
        self.rpm, self.tpm = 10_000, 2_000_000

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    # The server side.

    async def _chat(self, request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {API_KEY}":
            return _error(
                Error(
                    401, "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"
                )
            )
        try:
            body = json.loads(await request.body())
        except ValueError:
            return _error(Error(400, "We could not parse the JSON body of your request.",
                                "invalid_request_error"))  # fmt: skip
        if not isinstance(body, dict) or "model" not in body or not body.get("messages"):
            return _error(Error(400, "Missing required parameter: 'messages'.",
                                "invalid_request_error", "missing_required_parameter"))  # fmt: skip
        with self._lock:
            self.requests.append(Recorded(dict(request.headers), body))
            now = time.monotonic()
            while self._window and now - self._window[0] > WINDOW_SECONDS:
                self._window.popleft()
            if len(self._window) >= self.rpm:
                reset = WINDOW_SECONDS - (now - self._window[0])
                return _error(rate_limited(math.ceil(reset)), self._limits(0, reset))
            self._window.append(now)
            remaining, reset = (
                self.rpm - len(self._window),
                WINDOW_SECONDS - (now - self._window[0]),
            )
            reply = self._script.popleft() if self._script else None
        if reply is None:
            reply = (self.responder or default_reply)(body)
        if self.hold is not None and self.hold(body):
            self.held.set()
            await asyncio.get_running_loop().run_in_executor(None, self.release.wait, 60)
        headers = self._limits(remaining, reset)
        if isinstance(reply, Hang):
            await asyncio.sleep(reply.seconds)
            return _error(Error(504, "timed out"), headers)
        if isinstance(reply, Error):
            return _error(reply, {**headers, **reply.headers})
        if isinstance(reply, Broken):
            return Response(reply.body, 200, headers, media_type="application/json")
        headers |= reply.headers if isinstance(reply, Text) else {}
        prompt = sum(tokens(json.dumps(m.get("content"))) for m in body["messages"])
        if body.get("stream"):
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            return StreamingResponse(
                _chunks(reply, prompt, include_usage), headers=headers,
                media_type="text/event-stream",
            )  # fmt: skip
        return JSONResponse(_completion(reply, prompt), headers=headers)

    def _limits(self, remaining_requests: int, reset_requests: float) -> dict[str, str]:
        return {
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "openai-processing-ms": "12",
            "x-ratelimit-limit-requests": str(self.rpm),
            "x-ratelimit-remaining-requests": str(max(0, remaining_requests)),
            "x-ratelimit-reset-requests": _duration(reset_requests),
            "x-ratelimit-limit-tokens": str(self.tpm),
            "x-ratelimit-remaining-tokens": str(self.tpm - 100),
            "x-ratelimit-reset-tokens": "3ms",
        }


def _duration(seconds: float) -> str:
    """OpenAI's reset format: ``6m0s``, ``1s``, ``120ms``."""
    if seconds < 1:
        return f"{max(1, round(seconds * 1000))}ms"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)}m{rest:.0f}s" if minutes else f"{rest:.0f}s"


def _error(error: Error, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        {"error": {"message": error.message, "type": error.type, "param": None,
                   "code": error.code}},
        status_code=error.status,
        headers={**(headers or {}), **error.headers},
    )  # fmt: skip


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0,
        },
    }  # fmt: skip


def _completion(reply: Text | Refusal, prompt: int) -> dict[str, Any]:
    content = reply.content if isinstance(reply, Text) else None
    refusal = reply.words if isinstance(reply, Refusal) else None
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": SNAPSHOT,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": content, "refusal": refusal,
                        "annotations": []},
            "logprobs": None,
            "finish_reason": reply.finish_reason if isinstance(reply, Text) else "stop",
        }],
        "usage": _usage(prompt, tokens(content or refusal or "")),
        "service_tier": "default",
        "system_fingerprint": "fp_herald_fake",
    }  # fmt: skip


async def _chunks(reply: Text | Refusal, prompt: int, include_usage: bool) -> AsyncIterator[bytes]:
    ident, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
        body = {
            "id": ident, "object": "chat.completion.chunk", "created": created,
            "model": SNAPSHOT, "system_fingerprint": "fp_herald_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }  # fmt: skip
        if include_usage:
            body["usage"] = None
        body.update(extra)
        return f"data: {json.dumps(body)}\n\n".encode()

    yield chunk({"role": "assistant", "content": "", "refusal": None})
    text = reply.content if isinstance(reply, Text) else reply.words
    key = "content" if isinstance(reply, Text) else "refusal"
    for start in range(0, len(text), STREAM_PIECE):
        yield chunk({key: text[start : start + STREAM_PIECE]})
        await asyncio.sleep(0)
    yield chunk({}, reply.finish_reason if isinstance(reply, Text) else "stop")
    if include_usage:
        yield chunk({}, choices=[], usage=_usage(prompt, tokens(text)))
    yield b"data: [DONE]\n\n"

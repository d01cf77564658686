"""Streaming an AI answer as server-sent events (``Accept: text/event-stream``).

Events, in order: ``token`` as the model writes (``{"platform", "variant", "part", "text"}``:
the new text of one post; ``part`` 0 is the post, 1.. the posts of its thread), then exactly
one of ``result`` (the same JSON the operation answers without streaming: validated,
repaired, problems listed) or ``error`` (a problem+json body). Tokens show the first draft
only; a repair round's corrections arrive in ``result``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

from fastapi import Request
from pydantic import BaseModel
from sse_starlette import EventSourceResponse

from herald_api.ai.service import TokenSink
from herald_api.ai.streaming import TextDelta
from herald_api.problems import PROBLEM_TYPE_BASE, Problem, ProblemError
from herald_common.logging import get_logger

log = get_logger(__name__)
EVENT_STREAM = "text/event-stream"
# A comment line this often keeps proxies from closing a quiet stream (sse-starlette's).
PING_SECONDS = 15

DESCRIPTION = (
    "With `Accept: text/event-stream` the answer is a stream of server-sent events: `token` "
    '(`{"platform", "variant", "part", "text"}`, the new text of one post as the model writes '
    "it; `part` 0 is the post, 1 and on the posts of its thread), then one `result` (the same "
    "JSON as without streaming, after validation and any repair round) or one `error` (a "
    "problem+json body). Refusals before the model is asked (bad input, no model, quota) are "
    "plain problem+json answers, not streams."
)


def wants_stream(request: Request) -> bool:
    return EVENT_STREAM in request.headers.get("accept", "")


def streamed_response(
    run: Callable[[TokenSink], Awaitable[BaseModel]],
) -> EventSourceResponse:
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    async def on_token(platform: str | None, delta: TextDelta) -> None:
        token = {"platform": platform, "variant": delta.variant, "part": delta.part}
        await queue.put({"event": "token", "data": json.dumps({**token, "text": delta.text})})

    async def produce() -> None:
        try:
            result = await run(on_token)
            await queue.put({"event": "result", "data": result.model_dump_json()})
        except ProblemError as exc:
            await queue.put({"event": "error", "data": _problem(exc)})
        except Exception as exc:  # the stream has begun: say so in it, never hang up silently
            log.exception("ai stream failed", error_type=type(exc).__name__)
            internal = ProblemError(500, "internal-error", "Something went wrong on our side.")
            await queue.put({"event": "error", "data": _problem(internal)})
        finally:
            await queue.put(None)

    async def events() -> AsyncIterator[dict[str, Any]]:
        task = asyncio.create_task(produce())
        try:
            while (event := await queue.get()) is not None:
                yield event
        finally:
            if not task.done():  # the client went away: stop asking the model
                task.cancel()

    return EventSourceResponse(events(), ping=PING_SECONDS)


def _problem(exc: ProblemError) -> str:
    body = Problem(
        type=PROBLEM_TYPE_BASE + exc.slug,
        title=HTTPStatus(exc.status).phrase,
        status=exc.status,
        detail=exc.detail,
        errors=exc.errors or None,
    )
    return body.model_dump_json(exclude_none=True)

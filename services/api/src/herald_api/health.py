"""Liveness and readiness.

/readyz also reports whether the AI assistant is configured (and has a live worker for
content plans), and, per platform, whether any publisher is polling that platform's queue
(arq rewrites ``{queue}:health-check`` every HERALD_PUBLISHER_HEARTBEAT_SECONDS from its poll
loop, with a TTL one second longer). That report never makes the API unready: the API can
still accept and schedule posts while a platform has no publisher (they wait in the queue),
and taking every API pod out of its Service because one platform's workers are scaled down
or crashing would turn a partial outage into a total one. Alert on it instead.
"""

from __future__ import annotations

import asyncio

from arq.constants import health_check_key_suffix
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from redis.asyncio import Redis
from sqlalchemy import text

from herald_api.ai.tasks import AI_QUEUE
from herald_api.deps import ResourcesDep
from herald_common.platforms.registry import PLATFORM_NAMES
from herald_common.queue import queue_name

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 2.0
AI_NOT_CONFIGURED = "not configured"
NO_AI_WORKER = "no live AI worker"


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


class Readiness(Health):
    # Per platform: "ok" while some publisher polls its queue, else why not. Informational.
    publishers: dict[str, str] = {}
    # The AI assistant: "not configured" (no HERALD_OPENAI_API_KEY), "ok", or "no live AI
    # worker" (content plans wait in their queue). Informational, like publishers.
    ai: str = AI_NOT_CONFIGURED


NO_PUBLISHER = "no live publisher"


async def publisher_heartbeats(redis: Redis, platforms: tuple[str, ...]) -> dict[str, str]:
    keys = [queue_name(platform) + health_check_key_suffix for platform in platforms]
    values = await redis.mget(keys)
    return {
        platform: "ok" if value is not None else NO_PUBLISHER
        for platform, value in zip(platforms, values, strict=True)
    }


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness}})
async def readyz(resources: ResourcesDep) -> JSONResponse:
    """Ready when the database and Redis answer; reports which platforms have publishers."""

    async def database() -> None:
        async with resources.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    async def redis() -> None:
        await resources.redis.ping()

    checks: dict[str, str] = {}
    for name, check in (("database", database), ("redis", redis)):
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            checks[name] = "ok"
        except Exception as exc:  # any failure means not ready; the reason is reported
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    try:
        publishers = await asyncio.wait_for(
            publisher_heartbeats(resources.redis, PLATFORM_NAMES), CHECK_TIMEOUT_SECONDS
        )
    except Exception as exc:  # Redis is down: the redis check above already says so
        publishers = dict.fromkeys(PLATFORM_NAMES, f"unknown: {type(exc).__name__}")
    ai = AI_NOT_CONFIGURED
    if resources.ai_model is not None:
        try:
            alive = await asyncio.wait_for(
                resources.redis.exists(AI_QUEUE + health_check_key_suffix), CHECK_TIMEOUT_SECONDS
            )
            ai = "ok" if alive else NO_AI_WORKER
        except Exception as exc:  # Redis is down: the redis check above already says so
            ai = f"unknown: {type(exc).__name__}"
    body = Readiness(
        status="ok" if ready else "unavailable", checks=checks, publishers=publishers, ai=ai
    )
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

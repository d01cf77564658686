"""The process-wide clients the API shares across requests, opened and closed by the lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_api.ai.model import Model, build_client
from herald_api.api_keys.usage import KeyUsage
from herald_api.auth.passwords import PasswordHasher
from herald_api.auth.tokens import TokenSigner
from herald_api.mail import Courier, MailSender, build_mail_sender
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.http import create_http_client
from herald_common.platforms.base import Platform
from herald_common.platforms.registry import build_platforms
from herald_common.settings import Settings


@dataclass(frozen=True, slots=True)
class Resources:
    settings: Settings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    redis: Redis
    http: httpx.AsyncClient
    platforms: dict[str, Platform]
    passwords: PasswordHasher
    tokens: TokenSigner
    courier: Courier
    key_usage: KeyUsage
    # The AI model, or None when HERALD_OPENAI_API_KEY is not set.
    ai_model: Model | None


@asynccontextmanager
async def open_resources(
    settings: Settings, mailer: MailSender | None = None
) -> AsyncIterator[Resources]:
    engine = create_engine(settings)
    sessions = create_session_factory(engine)
    redis = Redis.from_url(settings.redis_url)
    http = create_http_client(settings)
    passwords = PasswordHasher(settings)
    key_usage = KeyUsage(sessions)
    courier = Courier(mailer or build_mail_sender(settings))
    openai = build_client(settings, http)
    try:
        yield Resources(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=redis,
            http=http,
            platforms=build_platforms(settings, http, sessions),
            passwords=passwords,
            tokens=TokenSigner(settings),
            courier=courier,
            key_usage=key_usage,
            ai_model=Model(settings, redis, sessions, openai) if openai else None,
        )
    finally:
        await key_usage.drain()
        await courier.drain()
        passwords.close()
        await http.aclose()
        await redis.aclose()
        await engine.dispose()

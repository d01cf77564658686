"""The built-in sandbox platform: lets anyone try the whole product with no credentials.

It "publishes" by writing to ``sandbox_publications`` (its own record, listable through the
API), after an optional latency and with an optional failure rate, both settings. Like a
platform without idempotency keys, every call adds a row; ``find_published`` looks the
idempotency key up in that record, as a lookup of recent posts would on a real platform.
"""

from __future__ import annotations

import asyncio
import hashlib
import random

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.db.models import SandboxPublication
from herald_common.platforms.base import (
    ContentProblem,
    Media,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
    media_problems,
)
from herald_common.platforms.errors import Transient
from herald_common.settings import Settings

MAX_LENGTH = 5000
MAX_PICTURES = 4


class Sandbox(Platform):
    name = "sandbox"
    # Its own record can be read at any time (find_published).
    reconcilable = True
    # Generous, but real, so the token buckets are exercised end to end.
    limits = (RateLimit("posts", capacity=600, per_seconds=60, scope="account"),)

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        sessions: async_sessionmaker[AsyncSession] | None = None,
    ) -> None:
        super().__init__(settings, http)
        self._sessions = sessions

    def validate(self, content: PostContent) -> list[ContentProblem]:
        problems = media_problems(
            "The sandbox",
            content.media,
            max_count=MAX_PICTURES,
            max_bytes=self.settings.media_max_bytes,
        )
        if not content.text.strip():
            problems.append(ContentProblem("content", "The post has no text."))
        if len(content.text) > MAX_LENGTH:
            problems.append(
                ContentProblem(
                    "content",
                    f"The sandbox allows {MAX_LENGTH} characters; this post has "
                    f"{len(content.text)}.",
                )
            )
        return problems

    def _require_sessions(self) -> async_sessionmaker[AsyncSession]:
        if self._sessions is None:
            raise RuntimeError("the sandbox platform needs a database session factory")
        return self._sessions

    async def publish(self, request: PublishRequest) -> Published:
        if self.settings.sandbox_latency_ms:
            await asyncio.sleep(self.settings.sandbox_latency_ms / 1000)
        # Pictures are "uploaded" like a platform's: read once, remembered, reused on retry.
        media = await self.upload_all(request, _upload)
        if random.random() < self.settings.sandbox_failure_rate:
            raise Transient("sandbox: injected failure", http_status=503)
        async with self._require_sessions().begin() as session:
            publication = SandboxPublication(
                workspace_id=request.account.workspace_id,
                account_id=request.account.account_id,
                idempotency_key=request.idempotency_key,
                text=request.content.text,
                media=media,
            )
            session.add(publication)
        return _published(publication)

    async def find_published(self, request: PublishRequest) -> Published | None:
        async with self._require_sessions()() as session:
            found = await session.scalar(
                select(SandboxPublication)
                .where(
                    SandboxPublication.account_id == request.account.account_id,
                    SandboxPublication.idempotency_key == request.idempotency_key,
                )
                .order_by(SandboxPublication.published_at)
                .limit(1)
            )
        return None if found is None else _published(found)


async def _upload(item: Media, data: bytes) -> str:
    """The sandbox's reference for a picture: its content type and a digest of the bytes it
    was given, so a test can tell the bytes really travelled."""
    return f"{item.content_type};sha256={hashlib.sha256(data).hexdigest()}"


def _published(publication: SandboxPublication) -> Published:
    return Published(
        remote_id=str(publication.id), remote_url=f"sandbox://publications/{publication.id}"
    )

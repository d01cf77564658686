"""Pictures at publish time: read from Postgres, uploaded once per target, remembered before
the post is created and reused by retries; a missing picture fails the target."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from typing import ClassVar

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.db.models import Media, MediaUpload, Post, PostTarget
from herald_common.platforms.base import (
    ContentProblem,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
)
from herald_common.platforms.base import Media as MediaInfo
from herald_common.platforms.errors import Transient
from herald_common.settings import Settings
from herald_publisher.media import ByteBudget
from herald_publisher.publish import PublisherDeps, publish_target, publish_targets
from tests.conftest import Tenant, make_tenant
from tests.factories import insert_due_targets, load_target
from tests.fakes.media import image_bytes
from tests.services import wait_for

MIB = 1024 * 1024


class Uploading(Platform):
    """A platform double that uploads pictures like the real adapters do, counting uploads,
    and fails its first ``failures`` posts after uploading."""

    name = "sandbox"
    limits: ClassVar[tuple[RateLimit, ...]] = ()

    def __init__(self, settings: Settings, failures: int = 0) -> None:
        super().__init__(settings, httpx.AsyncClient())
        self.failures = failures
        self.uploads: list[tuple[uuid.UUID, bytes]] = []
        self.posted: list[list[str]] = []

    def validate(self, content: PostContent) -> list[ContentProblem]:
        return []

    async def _upload(self, item: MediaInfo, data: bytes) -> str:
        self.uploads.append((item.id, data))
        return f"remote-media-{len(self.uploads)}"

    async def publish(self, request: PublishRequest) -> Published:
        references = await self.upload_all(request, self._upload)
        if self.failures:
            self.failures -= 1
            raise Transient("503 from the platform", http_status=503)
        self.posted.append(references)
        return Published(f"post-{request.target_id}")

    async def find_published(self, request: PublishRequest) -> Published | None:
        return None


class Forgetful(Uploading):
    """Keeps an unattached upload for an hour, like X or Mastodon keep theirs for a day."""

    media_reference_ttl: ClassVar[timedelta | None] = timedelta(hours=1)


async def add_media(
    sessions: async_sessionmaker[AsyncSession],
    workspace_id: uuid.UUID,
    data: bytes,
    size_bytes: int | None = None,
) -> uuid.UUID:
    async with sessions.begin() as session:
        media = Media(
            workspace_id=workspace_id,
            content_type="image/png",
            size_bytes=len(data) if size_bytes is None else size_bytes,
            width=8,
            height=6,
            sha256="0" * 64,
            data=data,
        )
        session.add(media)
        await session.flush()
        return media.id


async def due_target_with(
    sessions: async_sessionmaker[AsyncSession], tenant: Tenant, media_ids: list[uuid.UUID]
) -> uuid.UUID:
    [target_id] = await insert_due_targets(
        sessions, tenant.workspace_id, count=1, accounts=1, due_at=clock.now()
    )
    async with sessions.begin() as session:
        post_id = await session.scalar(select(PostTarget.post_id).where(PostTarget.id == target_id))
        await session.execute(update(Post).where(Post.id == post_id).values(media_ids=media_ids))
    return target_id


async def uploads(
    sessions: async_sessionmaker[AsyncSession], target_id: uuid.UUID
) -> dict[uuid.UUID, MediaUpload]:
    async with sessions() as session:
        rows = await session.scalars(select(MediaUpload).where(MediaUpload.target_id == target_id))
        return {row.media_id: row for row in rows}


async def test_pictures_are_uploaded_once_and_reused_by_the_retry(
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    first, second = image_bytes(width=3), image_bytes("image/jpeg", width=5)
    media_ids = [
        await add_media(sessions, tenant.workspace_id, second),
        await add_media(sessions, tenant.workspace_id, first),
    ]
    target_id = await due_target_with(sessions, tenant, media_ids)
    platform = Uploading(settings, failures=1)
    deps = make_deps(platform)

    assert await publish_target(deps, target_id, 1) == "transient"
    # The bytes stored in Postgres reached the platform, and each upload was kept at once.
    assert sorted(platform.uploads) == sorted(zip(media_ids, [second, first], strict=True))
    kept = await uploads(sessions, target_id)
    assert set(kept) == set(media_ids)
    assert (await load_target(sessions, target_id)).status == "retrying"

    assert await publish_target(deps, target_id, 1) == "published"
    assert len(platform.uploads) == 2  # nothing uploaded again
    assert platform.posted == [[kept[m].reference for m in media_ids]]  # in the post's order
    assert (await load_target(sessions, target_id)).status == "published"


async def test_an_upload_the_platform_has_forgotten_is_done_again(
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    media_id = await add_media(sessions, tenant.workspace_id, image_bytes())
    target_id = await due_target_with(sessions, tenant, [media_id])
    platform = Forgetful(settings, failures=1)
    deps = make_deps(platform)
    assert await publish_target(deps, target_id, 1) == "transient"
    async with sessions.begin() as session:
        await session.execute(
            update(MediaUpload)
            .where(MediaUpload.target_id == target_id)
            .values(uploaded_at=clock.now() - timedelta(hours=2))
        )

    assert await publish_target(deps, target_id, 1) == "published"
    assert len(platform.uploads) == 2
    assert platform.posted == [["remote-media-2"]]
    assert (await uploads(sessions, target_id))[media_id].reference == "remote-media-2"


async def test_a_picture_that_is_gone_fails_the_target_without_posting(
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    make_deps: Callable[[Platform], PublisherDeps],
) -> None:
    # Another workspace's picture is as good as gone: it is never read for this one.
    other = await make_tenant(sessions, "globex")
    foreign = await add_media(sessions, other.workspace_id, image_bytes())
    target_id = await due_target_with(sessions, tenant, [foreign])
    platform = Uploading(settings)

    assert await publish_target(make_deps(platform), target_id, 1) == "rejected"
    row = await load_target(sessions, target_id)
    assert row.status == "failed"
    assert "deleted" in (row.error or "")
    assert platform.uploads == []
    assert platform.posted == []


class Overlapping(Uploading):
    """Counts how many posts with pictures are in flight at once. Each stays in flight until
    the other target of its job is in flight too, or waits for room in ``budget``: either way
    the two attempts are proven to overlap, not just to have had a moment to."""

    def __init__(self, settings: Settings, budget: ByteBudget | None) -> None:
        super().__init__(settings)
        self.budget = budget
        self.in_flight = 0
        self.most = 0
        self.overlapped = False  # seen once, for whichever attempt looks later

    async def publish(self, request: PublishRequest) -> Published:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await wait_for(self._other_one_arrived)
            return await super().publish(request)
        finally:
            self.in_flight -= 1

    async def _other_one_arrived(self) -> bool:
        held_back = self.budget is not None and self.budget.waiting == 1
        self.overlapped = self.overlapped or self.in_flight == 2 or held_back
        return self.overlapped


@pytest.mark.parametrize(("budget", "together"), [(None, 2), (ByteBudget(15 * MIB), 1)])
async def test_the_media_budget_bounds_pictures_held_at_once(
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    make_deps: Callable[[Platform], PublisherDeps],
    budget: ByteBudget | None,
    together: int,
) -> None:
    # Two targets of one job, each with a 10 MiB picture: a 15 MiB budget takes one at a time.
    targets = []
    for _ in range(2):
        media_id = await add_media(sessions, tenant.workspace_id, image_bytes(), 10 * MIB)
        targets.append(await due_target_with(sessions, tenant, [media_id]))
    platform = Overlapping(settings, budget)
    deps = replace(make_deps(platform), media_budget=budget)

    outcomes = await publish_targets(deps, [(t, 1) for t in targets])

    assert set(outcomes.values()) == {"published"}
    assert platform.most == together
    assert budget is None or budget.held == 0


async def test_a_picture_larger_than_the_budget_still_goes_alone() -> None:
    budget = ByteBudget(MIB)
    entered, done = asyncio.Event(), asyncio.Event()

    async def small() -> None:
        async with budget.hold(1):
            entered.set()
            await done.wait()

    async with budget.hold(5 * MIB):
        assert budget.held == MIB  # the whole budget, no more
        waiting = asyncio.create_task(small())

        async def small_waits_for_room() -> bool:
            return budget.waiting == 1

        await wait_for(small_waits_for_room)
        assert not entered.is_set()
    await asyncio.wait_for(entered.wait(), 1)
    assert budget.held == 1
    done.set()
    await waiting
    assert budget.held == 0

"""Content plans as background jobs on the ``herald:ai`` queue (worker.py runs them).

A batch is planned once (its items are rows), then each item is written (the texts kept on
the row), then drafted through the posts service's own create with an Idempotency-Key of
the item. Each step commits before the next starts, so a worker killed anywhere leaves a
state the re-run continues from: an item planned is written, an item written is drafted,
and a draft already made is found again by its key (same key, same body: the same post),
never made twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from arq.connections import ArqRedis
from pydantic import BaseModel, Field
from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.ai import repository
from herald_api.ai.model import Caller, Model
from herald_api.ai.prompts import plan as plan_prompt
from herald_api.ai.schemas import MAX_BRIEF_LENGTH, BatchStatus, GenerateRequest, ItemStatus
from herald_api.ai.service import AiContext, generate_posts, prepare_generate
from herald_api.posts import service as posts_service
from herald_api.posts.context import PostContext
from herald_api.posts.schemas import PostCreate, TargetIn
from herald_api.problems import ProblemError
from herald_common import clock
from herald_common.db.models import AiBatch, AiBatchItem
from herald_common.logging import get_logger
from herald_common.platforms.base import Platform
from herald_common.queue import deserialize, serialize
from herald_common.settings import Settings

log = get_logger(__name__)
AI_QUEUE = "herald:ai"
RUN_BATCH = "run_ai_batch"
# A suggested time this close to now is dropped: by the time a person reviews the draft it
# would be past, and the posts API refuses past times.
MIN_LEAD_SECONDS = 15 * 60


def batch_job_id(batch_id: uuid.UUID) -> str:
    """One job per batch: enqueueing it twice is a no-op."""
    return f"ai-batch:{batch_id}"


def item_idempotency_key(batch_id: uuid.UUID, position: int) -> str:
    return f"ai-batch:{batch_id}:{position}"


async def enqueue_batch(redis: Redis, batch_id: uuid.UUID) -> None:
    queue = ArqRedis(
        connection_pool=redis.connection_pool,
        job_serializer=serialize,
        job_deserializer=deserialize,
    )
    await queue.enqueue_job(
        RUN_BATCH, str(batch_id), _job_id=batch_job_id(batch_id), _queue_name=AI_QUEUE
    )


@dataclass(frozen=True, slots=True)
class BatchDeps:
    settings: Settings
    sessions: async_sessionmaker[AsyncSession]
    platforms: dict[str, Platform]
    model: Model | None


class _Planned(BaseModel):
    brief: str = Field(max_length=MAX_BRIEF_LENGTH)
    publish_at: str = ""


class _Plan(BaseModel):
    posts: list[_Planned]


def _parse_plan(content: str) -> list[_Planned]:
    posts = [p for p in _Plan.model_validate_json(content).posts if p.brief.strip()]
    if not posts:
        raise ValueError("the plan holds no posts")
    return posts


def _suggested(value: str, now: datetime) -> datetime | None:
    """The plan's time for a post when it is a real time with an offset comfortably ahead;
    anything else (a date alone, a past time, words) leaves the draft unscheduled."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if moment.tzinfo is None or (moment - now).total_seconds() < MIN_LEAD_SECONDS:
        return None
    return moment


async def run_batch(deps: BatchDeps, batch_id: uuid.UUID) -> None:
    async with deps.sessions() as session:
        batch = await repository.find_batch(session, batch_id)
        if batch is None or batch.status in (BatchStatus.SUCCEEDED, BatchStatus.FAILED):
            return
        workspace_id = batch.workspace_id
        caller = Caller(workspace_id, batch.created_by, batch.api_key_id, batch.id)
        ctx = AiContext(session, caller, deps.settings, deps.platforms, deps.model, max_wait=None)
        try:
            items = await _planned_items(ctx, batch)
            for item in items:
                await _work_item(ctx, batch, item)
        except ProblemError as exc:
            # The model refused the plan, the quota ran out, or the model failed after its
            # retries: the batch stops here, its drafts so far kept.
            await session.rollback()
            log.info("ai batch stopped", batch_id=str(batch_id), reason=exc.slug)
            await repository.set_batch_status(
                session,
                workspace_id,
                batch_id,
                BatchStatus.FAILED,
                error=exc.detail,
                finished_at=clock.now(),
            )
            await session.commit()
            return
        await repository.set_batch_status(
            session, workspace_id, batch_id, BatchStatus.SUCCEEDED, finished_at=clock.now()
        )
        await session.commit()


async def _planned_items(ctx: AiContext, batch: AiBatch) -> list[AiBatchItem]:
    workspace_id, batch_id = batch.workspace_id, batch.id
    items = list(await repository.items_of(ctx.session, workspace_id, batch_id))
    if items:
        return items
    await repository.set_batch_status(ctx.session, workspace_id, batch_id, BatchStatus.PLANNING)
    await ctx.session.commit()
    model = ctx.require_model()
    now = clock.now()
    planned = await model.complete_json(
        ctx.caller,
        "plan",
        plan_prompt.messages(
            plan=batch.plan,
            max_posts=batch.max_posts,
            now=now,
            language=batch.language,
            tone=batch.tone,
        ),
        plan_prompt.SCHEMA,
        _parse_plan,
        max_wait=ctx.max_wait,
    )
    items = [
        AiBatchItem(
            batch_id=batch.id,
            workspace_id=batch.workspace_id,
            position=position,
            brief=entry.brief.strip(),
            suggested_at=_suggested(entry.publish_at, now),
            status=ItemStatus.PLANNED,
        )
        for position, entry in enumerate(planned[: batch.max_posts])
    ]
    try:
        await repository.add_items(ctx.session, items)
        await repository.set_batch_status(ctx.session, workspace_id, batch_id, BatchStatus.DRAFTING)
        await ctx.session.commit()
    except IntegrityError:
        # Another run of the same job planned it first (arq re-ran a job thought dead):
        # its plan stands.
        await ctx.session.rollback()
        items = list(await repository.items_of(ctx.session, workspace_id, batch_id))
    return items


async def _work_item(ctx: AiContext, batch: AiBatch, item: AiBatchItem) -> None:
    if item.status == ItemStatus.PLANNED:
        try:
            item.written = await _write_item(ctx, batch, item)
        except ProblemError as exc:
            # What is wrong with this post alone (refused, unusable answer) fails the item;
            # the quota, the model down or not answering stop the batch.
            if exc.status != 422 and exc.slug != "ai-bad-output":
                raise
            item.status, item.error = ItemStatus.FAILED, exc.detail
        else:
            item.status = ItemStatus.WRITTEN
        await ctx.session.commit()
    if item.status == ItemStatus.WRITTEN:
        try:
            item.post_id = await _draft(ctx, batch, item)
        except ProblemError as exc:
            item.status, item.error = ItemStatus.FAILED, exc.detail
        else:
            item.status = ItemStatus.DRAFTED
        await ctx.session.commit()


async def _write_item(ctx: AiContext, batch: AiBatch, item: AiBatchItem) -> list[dict[str, Any]]:
    """One variant per platform of the batch's accounts, kept per account."""
    request = GenerateRequest(
        brief=item.brief,
        tone=batch.tone,
        language=batch.language,
        variants=1,
        account_ids=list(batch.account_ids),
    )
    plan = await prepare_generate(ctx, request)
    result = await generate_posts(ctx, plan, request)
    written = []
    for entry in result.results:
        variant = entry.variants[0]
        for account_id in entry.account_ids:
            written.append(
                {
                    "account_id": str(account_id),
                    "text": variant.text,
                    "thread": variant.thread,
                    "problems": [p.model_dump() for p in variant.problems],
                }
            )
    order = {str(a): i for i, a in enumerate(batch.account_ids)}
    return sorted(written, key=lambda w: order[w["account_id"]])


async def _draft(ctx: AiContext, batch: AiBatch, item: AiBatchItem) -> uuid.UUID:
    """The item's draft, through the posts service like any post created by a person."""
    written = item.written or []
    content = written[0]["text"]
    targets = [
        TargetIn(
            account_id=uuid.UUID(w["account_id"]),
            content=None if w["text"] == content else w["text"],
            thread=w["thread"],
        )
        for w in written
    ]
    posts = PostContext(ctx.session, batch.workspace_id, ctx.settings, ctx.platforms)
    key = item_idempotency_key(batch.id, item.position)

    async def create(scheduled_at: datetime | None) -> uuid.UUID:
        data = PostCreate(content=content, targets=targets, draft=True, scheduled_at=scheduled_at)
        made, _ = await posts_service.create_post(posts, data, key)
        return made.post.id

    try:
        return await create(item.suggested_at)
    except ProblemError as exc:
        # The suggested time passed while the batch waited: keep the draft, unscheduled.
        if item.suggested_at is None or not any(e.field == "scheduled_at" for e in exc.errors):
            raise
        return await create(None)

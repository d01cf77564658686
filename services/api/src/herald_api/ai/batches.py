"""Content plans through the API: accept one (and queue its job), report its progress."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from redis.asyncio import Redis
from redis.exceptions import RedisError

from herald_api.ai import repository
from herald_api.ai.schemas import (
    Batch,
    BatchCreate,
    BatchItem,
    BatchStatus,
    ItemStatus,
    WrittenText,
)
from herald_api.ai.service import AiContext, workspace_accounts
from herald_api.ai.tasks import enqueue_batch
from herald_api.problems import FieldProblem, ProblemError
from herald_common import clock
from herald_common.db.models import AiBatch, AiBatchItem


async def create_batch(ctx: AiContext, redis: Redis, request: BatchCreate) -> Batch:
    model = ctx.require_model()
    limit = ctx.settings.ai_batch_max_posts
    if request.max_posts is not None and request.max_posts > limit:
        raise ProblemError(
            422,
            "validation-failed",
            "The plan asks for too many posts.",
            [FieldProblem(field="max_posts", message=f"At most {limit}.")],
        )
    await workspace_accounts(ctx, request.account_ids)
    await model.check_quota(ctx.caller)
    batch = await repository.add_batch(
        ctx.session,
        AiBatch(
            workspace_id=ctx.workspace_id,
            created_by=ctx.caller.user_id,
            api_key_id=ctx.caller.api_key_id,
            plan=request.plan,
            account_ids=list(request.account_ids),
            tone=request.tone,
            language=request.language,
            max_posts=request.max_posts or limit,
            status=BatchStatus.QUEUED,
        ),
    )
    await ctx.session.commit()
    # Enqueued only once the row is committed: the job reads it.
    try:
        await enqueue_batch(redis, batch.id)
    except RedisError:
        await repository.set_batch_status(
            ctx.session,
            ctx.workspace_id,
            batch.id,
            BatchStatus.FAILED,
            error="The plan could not be queued.",
            finished_at=clock.now(),
        )
        await ctx.session.commit()
        raise ProblemError(
            503, "queue-unavailable", "The plan could not be queued; try again shortly."
        ) from None
    return to_out(batch, [])


async def get_batch(ctx: AiContext, batch_id: uuid.UUID) -> Batch:
    batch = await repository.get_batch(ctx.session, ctx.workspace_id, batch_id)
    if batch is None:
        raise ProblemError(
            404, "batch-not-found", "No content plan with this id in this workspace."
        )
    items = await repository.items_of(ctx.session, ctx.workspace_id, batch_id)
    return to_out(batch, items)


def to_out(batch: AiBatch, items: Sequence[AiBatchItem]) -> Batch:
    rows = list(items)
    return Batch(
        id=batch.id,
        status=BatchStatus(batch.status),
        plan=batch.plan,
        account_ids=list(batch.account_ids),
        max_posts=batch.max_posts,
        total=len(rows),
        drafted=sum(1 for i in rows if i.status == ItemStatus.DRAFTED),
        failed=sum(1 for i in rows if i.status == ItemStatus.FAILED),
        items=[
            BatchItem(
                position=i.position,
                brief=i.brief,
                suggested_at=i.suggested_at,
                status=ItemStatus(i.status),
                post_id=i.post_id,
                error=i.error,
                written=[WrittenText.model_validate(w) for w in i.written or []],
            )
            for i in rows
        ],
        error=batch.error,
        created_at=batch.created_at,
        finished_at=batch.finished_at,
    )

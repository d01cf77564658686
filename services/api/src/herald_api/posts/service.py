"""What the posts API does: create, read, edit, cancel and publish posts, within one workspace.

Each public function is one transaction: it reads under row locks, decides, writes, and
commits. Wake-ups for the scheduler ride on the same transaction (NOTIFY is delivered at
commit), so the scheduler never looks before the rows are visible. Whether a post may be
scheduled as it is lives in validation.py.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError

from herald_api.posts import repository
from herald_api.posts.context import PostContext
from herald_api.posts.repository import PostWithTargets
from herald_api.posts.schemas import PostCreate, PostSort, PostUpdate, TargetIn
from herald_api.posts.validation import (
    as_target_in,
    check_publishable,
    invalid,
    resolve_accounts,
    resolve_media,
    resolve_time,
)
from herald_api.problems import FieldProblem, ProblemError
from herald_common import clock
from herald_common.db.models import Post, PostTarget
from herald_common.db.repositories.targets import notify_scheduler
from herald_common.ids import new_id
from herald_common.statuses import (
    EDITABLE,
    PostStatus,
    TargetStatus,
    check_transition,
    derive_post_status,
)

RETRYABLE = frozenset({TargetStatus.FAILED, TargetStatus.UNKNOWN})


def _not_found() -> ProblemError:
    return ProblemError(404, "post-not-found", "No post with this id in this workspace.")


async def get_post(ctx: PostContext, post_id: uuid.UUID) -> PostWithTargets:
    post = await repository.get_post(ctx.session, ctx.workspace_id, post_id)
    if post is None:
        raise _not_found()
    targets = await repository.targets_of(ctx.session, ctx.workspace_id, [post.id], lock=False)
    return PostWithTargets(post, targets[post.id])


async def list_posts(
    ctx: PostContext,
    *,
    statuses: Sequence[PostStatus],
    scheduled_from: datetime | None,
    scheduled_to: datetime | None,
    sort: PostSort,
    after: tuple[datetime | None, uuid.UUID] | None,
    limit: int,
) -> list[PostWithTargets]:
    posts = await repository.list_posts(
        ctx.session,
        ctx.workspace_id,
        statuses=statuses,
        scheduled_from=scheduled_from,
        scheduled_to=scheduled_to,
        sort=sort,
        after=after,
        limit=limit,
    )
    targets = await repository.targets_of(
        ctx.session, ctx.workspace_id, [p.id for p in posts], lock=False
    )
    return [PostWithTargets(p, targets[p.id]) for p in posts]


def _request_hash(data: PostCreate) -> str:
    return hashlib.sha256(data.model_dump_json().encode()).hexdigest()


async def create_post(
    ctx: PostContext, data: PostCreate, idempotency_key: str | None
) -> tuple[PostWithTargets, bool]:
    """Create a post; with an Idempotency-Key, a repeat returns the first result (and False)."""
    request_hash = _request_hash(data)
    if idempotency_key is not None:
        replay = await _replay(ctx, idempotency_key, request_hash)
        if replay is not None:
            return replay, False
    scheduled_at = resolve_time(ctx, data.scheduled_at, data.timezone)
    accounts = await resolve_accounts(ctx, data.targets)
    media = await resolve_media(ctx, data.media_ids)
    if not data.draft:
        check_publishable(ctx, data.content, media, data.targets, accounts)
    post = Post(
        id=new_id(),
        workspace_id=ctx.workspace_id,
        content=data.content,
        media_ids=list(data.media_ids),
        scheduled_at=scheduled_at,
        timezone=data.timezone,
        status=PostStatus.DRAFT if data.draft else PostStatus.SCHEDULED,
        revision=1,
        idempotency_key=idempotency_key,
        request_hash=request_hash,
    )
    targets = [
        PostTarget(
            id=new_id(),
            workspace_id=ctx.workspace_id,
            post_id=post.id,
            account_id=t.account_id,
            platform=accounts[t.account_id].platform,
            content_override=t.content,
            thread=list(t.thread),
            content_warning=t.content_warning,
            visibility=t.visibility,
            scheduled_at=None if data.draft else scheduled_at,
            status=TargetStatus.PENDING,
            revision=1,
            attempts=0,
        )
        for t in data.targets
    ]
    try:
        await repository.insert_post(ctx.session, post, targets)
        await _notify_if_due(ctx, post)
        await ctx.session.commit()
    except IntegrityError:
        # Another request with the same Idempotency-Key won the race: answer with its post.
        await ctx.session.rollback()
        if idempotency_key is None:
            raise
        replay = await _replay(ctx, idempotency_key, request_hash)
        if replay is None:
            raise
        return replay, False
    return PostWithTargets(post, targets), True


async def _replay(ctx: PostContext, key: str, request_hash: str) -> PostWithTargets | None:
    existing = await repository.get_by_idempotency_key(ctx.session, ctx.workspace_id, key)
    if existing is None:
        return None
    if existing.request_hash != request_hash:
        raise ProblemError(
            422,
            "idempotency-key-reused",
            "This Idempotency-Key was already used with a different request body.",
        )
    return await get_post(ctx, existing.id)


async def update_post(
    ctx: PostContext, post_id: uuid.UUID, data: PostUpdate, if_match: int
) -> PostWithTargets:
    post, targets = await _lock_for_change(ctx, post_id)
    if post.revision != if_match:
        raise ProblemError(
            412,
            "revision-mismatch",
            f"The post is at revision {post.revision}; re-read it and retry with that If-Match.",
        )
    before = _what_an_edit_changes(post, targets, draft=post.status == PostStatus.DRAFT)
    fields = data.model_fields_set
    if "timezone" in fields and "scheduled_at" not in fields:
        raise invalid([FieldProblem(field="scheduled_at", message="Give it with timezone.")])
    if data.content is not None:
        post.content = data.content
    if data.media_ids is not None:
        post.media_ids = list(data.media_ids)
    media = await resolve_media(ctx, post.media_ids)
    if "scheduled_at" in fields:
        post.scheduled_at = resolve_time(ctx, data.scheduled_at, data.timezone)
        post.timezone = data.timezone
    draft = data.draft if data.draft is not None else post.status == PostStatus.DRAFT
    if not draft and post.scheduled_at is None:
        raise invalid([FieldProblem(field="scheduled_at", message="Required to schedule.")])
    if data.targets is not None:
        targets = await _replace_targets(ctx, post, targets, data.targets)
    live = [t for t in targets if t.status != TargetStatus.CANCELLED]
    if not draft:
        accounts = await resolve_accounts(ctx, [as_target_in(t) for t in live])
        check_publishable(ctx, post.content, media, [as_target_in(t) for t in live], accounts)
    if _what_an_edit_changes(post, targets, draft=draft) == before:
        # The same values again: nothing is written, the revision (the ETag) stays, and the
        # targets keep their places in the queue.
        return PostWithTargets(post, targets)
    return await _reschedule(ctx, post, targets, draft=draft)


def _what_an_edit_changes(
    post: Post, targets: Sequence[PostTarget], *, draft: bool
) -> tuple[object, ...]:
    """Everything of a post that a PATCH can change, to compare before and after."""
    return (
        draft,
        post.content,
        list(post.media_ids or []),
        post.scheduled_at,
        post.timezone,
        sorted(
            (
                str(t.account_id),
                t.status,
                t.content_override,
                list(t.thread or []),
                t.content_warning,
                t.visibility,
            )
            for t in targets
        ),
    )


async def publish_now(ctx: PostContext, post_id: uuid.UUID) -> PostWithTargets:
    post, targets = await _lock_for_change(ctx, post_id)
    live = [t for t in targets if t.status in EDITABLE]
    accounts = await resolve_accounts(ctx, [as_target_in(t) for t in live])
    media = await resolve_media(ctx, post.media_ids)
    check_publishable(ctx, post.content, media, [as_target_in(t) for t in live], accounts)
    post.scheduled_at = clock.now()
    return await _reschedule(ctx, post, targets, draft=False)


async def cancel_post(ctx: PostContext, post_id: uuid.UUID) -> PostWithTargets:
    post, targets = await _lock_post(ctx, post_id)
    _refuse_while_publishing(targets)
    cancellable = [t for t in targets if t.status in EDITABLE]
    if not cancellable:  # already cancelled, or finished: nothing changes, the revision neither
        return PostWithTargets(post, targets)
    post.revision += 1
    for target in cancellable:
        move(target, TargetStatus.CANCELLED)
        target.revision = post.revision
    post.status = derive_post_status(TargetStatus(t.status) for t in targets)
    await ctx.session.commit()
    return PostWithTargets(post, targets)


async def _lock_for_change(ctx: PostContext, post_id: uuid.UUID) -> tuple[Post, list[PostTarget]]:
    """Lock a post and its targets for an edit, refusing posts that can no longer change."""
    post, targets = await _lock_post(ctx, post_id)
    _refuse_while_publishing(targets)
    if post.status == PostStatus.CANCELLED:
        raise ProblemError(409, "post-cancelled", "The post was cancelled.")
    finished = [t for t in targets if t.status not in EDITABLE | {TargetStatus.CANCELLED}]
    if finished:
        raise ProblemError(
            409,
            "post-finished",
            "Some targets already finished (published, failed or unknown); "
            "the post can no longer be changed.",
        )
    return post, targets


async def _lock_post(ctx: PostContext, post_id: uuid.UUID) -> tuple[Post, list[PostTarget]]:
    """The post and its targets, locked for the rest of the transaction, or a 404."""
    post = await repository.get_post(ctx.session, ctx.workspace_id, post_id, lock=True)
    if post is None:
        raise _not_found()
    targets = await repository.targets_of(ctx.session, ctx.workspace_id, [post.id], lock=True)
    return post, targets[post.id]


def _refuse_while_publishing(targets: Sequence[PostTarget]) -> None:
    if any(t.status == TargetStatus.PUBLISHING for t in targets):
        raise ProblemError(
            409,
            "post-publishing",
            "A target is being published right now; try again in a moment.",
        )
    # A target waiting to retry may still carry a request that may have reached its platform
    # (its answer was lost and asking failed): changing or cancelling it now could leave a
    # live post shown as cancelled, or post the edited text beside the first.
    asking = next((t for t in targets if t.status in EDITABLE and t.sent_at is not None), None)
    if asking is not None:
        raise ProblemError(
            409,
            "post-being-checked",
            f"A request for the {asking.platform} target may have been published; Herald is "
            "asking the platform before anything else happens to it. Try again once that "
            "target is published, retrying or unknown.",
        )


async def _reschedule(
    ctx: PostContext, post: Post, targets: list[PostTarget], *, draft: bool
) -> PostWithTargets:
    """Bump the revision and put every live target back to pending at it.

    Jobs already in the queue carry the old revision: when they fire, their claim finds no
    row and they do nothing, so the post goes out once, at its new time.
    """
    post.revision += 1
    for target in targets:
        if target.status in EDITABLE:
            move(target, TargetStatus.PENDING)
            target.revision = post.revision
            target.scheduled_at = None if draft else post.scheduled_at
            target.next_attempt_at = None
    post.status = derive_post_status((TargetStatus(t.status) for t in targets), draft=draft)
    await _notify_if_due(ctx, post)
    await ctx.session.commit()
    return PostWithTargets(post, targets)


async def _replace_targets(
    ctx: PostContext, post: Post, current: list[PostTarget], wanted: list[TargetIn]
) -> list[PostTarget]:
    accounts = await resolve_accounts(ctx, wanted)
    by_account = {t.account_id: t for t in current}
    for target_in in wanted:
        target = by_account.get(target_in.account_id)
        if target is None:
            target = PostTarget(
                workspace_id=ctx.workspace_id,
                post_id=post.id,
                account_id=target_in.account_id,
                platform=accounts[target_in.account_id].platform,
                revision=post.revision,
                status=TargetStatus.PENDING,
            )
            ctx.session.add(target)
            current.append(target)
        elif target.status == TargetStatus.CANCELLED:
            move(target, TargetStatus.PENDING)
        target.content_override = target_in.content
        target.thread = list(target_in.thread)
        target.content_warning = target_in.content_warning
        target.visibility = target_in.visibility
    keep = {t.account_id for t in wanted}
    for target in current:
        if target.account_id not in keep:
            move(target, TargetStatus.CANCELLED)
    await ctx.session.flush()
    return current


def move(target: PostTarget, status: TargetStatus) -> None:
    """Change a target's status, only along a transition herald_common.statuses allows."""
    check_transition(target.status, status)
    target.status = status


async def _notify_if_due(ctx: PostContext, post: Post) -> None:
    horizon = timedelta(seconds=ctx.settings.scheduler_horizon_seconds)
    if (
        post.status != PostStatus.DRAFT
        and post.scheduled_at is not None
        and post.scheduled_at <= clock.now() + horizon
    ):
        await notify_scheduler(ctx.session)


async def retry_target(
    ctx: PostContext, post_id: uuid.UUID, target_id: uuid.UUID, accept_duplicate_risk: bool
) -> PostWithTargets:
    post, targets = await _lock_post(ctx, post_id)
    target = next((t for t in targets if t.id == target_id), None)
    if target is None:
        raise ProblemError(404, "target-not-found", "The post has no target with this id.")
    if target.status not in RETRYABLE:
        raise ProblemError(
            409,
            "target-not-retryable",
            f"Only failed or unknown targets can be retried; this one is {target.status}.",
        )
    if target.status == TargetStatus.UNKNOWN and not accept_duplicate_risk:
        raise ProblemError(
            409,
            "retry-may-post-twice",
            f"This target's earlier request may have been published on {target.platform}: "
            "sending it again could post it twice. Check the platform; to send it anyway, "
            'retry with {"accept_duplicate_risk": true}.',
        )
    accounts = await resolve_accounts(ctx, [as_target_in(target)])
    media = await resolve_media(ctx, post.media_ids)
    check_publishable(ctx, post.content, media, [as_target_in(target)], accounts)
    post.revision += 1
    move(target, TargetStatus.PENDING)
    target.revision = post.revision
    target.scheduled_at = clock.now()
    # A fresh retry schedule; the earlier attempts stay in publish_attempts. A person chose
    # to send it: the earlier request is no longer asked about first.
    target.attempts = 0
    target.next_attempt_at = None
    target.sent_at = None
    target.lookups = 0
    target.error_kind = None
    target.error = None
    post.status = derive_post_status(TargetStatus(t.status) for t in targets)
    await notify_scheduler(ctx.session)
    await ctx.session.commit()
    return PostWithTargets(post, targets)

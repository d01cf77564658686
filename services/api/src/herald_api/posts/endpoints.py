"""HTTP for posts: thin; the behaviour lives in service.py, the checks in validation.py."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response, status

from herald_api.deps import SessionDep, WorkspaceDep, resources_of
from herald_api.pagination import (
    CursorQuery,
    LimitQuery,
    decode_cursor,
    decode_position,
    encode_position,
    page,
    page_by,
)
from herald_api.posts import service, validation
from herald_api.posts.context import PostContext
from herald_api.posts.repository import PostWithTargets
from herald_api.posts.schemas import (
    PostCreate,
    PostOut,
    PostPage,
    PostSort,
    PostUpdate,
    PostValidate,
    PostValidation,
    Rfc3339,
    TargetOut,
    TargetRetry,
)
from herald_api.problems import CONFLICT, NOT_FOUND, PRECONDITION, ProblemError
from herald_api.timing import TimingError, accepted_instant
from herald_common.statuses import PostStatus, TargetStatus

router = APIRouter(prefix="/v1/posts", tags=["posts"])


async def _context(
    request: Request, session: SessionDep, workspace_id: WorkspaceDep
) -> PostContext:
    resources = resources_of(request)
    return PostContext(session, workspace_id, resources.settings, resources.platforms)


ContextDep = Annotated[PostContext, Depends(_context)]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Repeat a create safely: the same key and body return the first result.",
    ),
]


def to_out(item: PostWithTargets) -> PostOut:
    post = item.post
    return PostOut(
        id=post.id,
        content=post.content,
        media_ids=list(post.media_ids or []),
        scheduled_at=post.scheduled_at,
        timezone=post.timezone,
        status=PostStatus(post.status),
        revision=post.revision,
        created_at=post.created_at,
        updated_at=post.updated_at,
        targets=[
            TargetOut(
                id=t.id,
                account_id=t.account_id,
                platform=t.platform,
                content=t.content_override,
                thread=list(t.thread or []),
                content_warning=t.content_warning,
                visibility=t.visibility,
                status=TargetStatus(t.status),
                attempts=t.attempts,
                remote_id=t.remote_id,
                remote_url=t.remote_url,
                published_at=t.published_at,
                next_attempt_at=t.next_attempt_at,
                error_kind=t.error_kind,
                last_error=t.error,
            )
            for t in item.targets
        ],
    )


def _etag(response: Response, item: PostWithTargets) -> PostOut:
    response.headers["ETag"] = f'"{item.post.revision}"'
    return to_out(item)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=PostOut,
    responses={200: {"model": PostOut, "description": "Replayed by Idempotency-Key."}},
)
async def create_post(
    ctx: ContextDep, data: PostCreate, response: Response, idempotency_key: IdempotencyKey = None
) -> PostOut:
    """Schedule a post to one or more accounts (or save it as a draft)."""
    item, created = await service.create_post(ctx, data, idempotency_key)
    if not created:
        response.status_code = status.HTTP_200_OK
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/posts/{item.post.id}"
    return _etag(response, item)


@router.post("/validate", response_model=PostValidation)
async def validate_post(ctx: ContextDep, data: PostValidate) -> PostValidation:
    """Check a post against every target platform's rules without saving it: every problem,
    per target, with a field path. Create and update refuse the same problems with 422."""
    problems = await validation.validate_post(ctx, data)
    return PostValidation(valid=not problems, problems=problems)


@router.get("", response_model=PostPage)
async def list_posts(
    ctx: ContextDep,
    post_status: Annotated[
        list[PostStatus] | None, Query(alias="status", description="Only posts in these statuses.")
    ] = None,
    scheduled_from: Annotated[
        Rfc3339 | None, Query(description="Scheduled at or after (RFC 3339).")
    ] = None,
    scheduled_to: Annotated[
        Rfc3339 | None, Query(description="Scheduled before (RFC 3339).")
    ] = None,
    sort: Annotated[
        PostSort,
        Query(
            description="`-created_at`: newest created first. `scheduled_at`: soonest first "
            "(a calendar); `-scheduled_at`: latest first. Posts with no time sort after every "
            "time. A cursor continues the sort it was made for."
        ),
    ] = PostSort.CREATED_DESC,
    cursor: CursorQuery = None,
    limit: LimitQuery = 50,
) -> PostPage:
    """Posts of the workspace, newest created first unless sorted by time, a page at a time."""
    fetched = await service.list_posts(
        ctx,
        statuses=post_status or [],
        scheduled_from=_filter_time(ctx, "scheduled_from", scheduled_from),
        scheduled_to=_filter_time(ctx, "scheduled_to", scheduled_to),
        sort=sort,
        after=_after(sort, cursor),
        limit=limit + 1,
    )
    if sort is PostSort.CREATED_DESC:
        items, next_cursor = page(fetched, limit, lambda item: item.post.id)
    else:
        tag = _CURSOR_TAGS[sort]
        items, next_cursor = page_by(
            fetched, limit, lambda item: encode_position(tag, item.post.scheduled_at, item.post.id)
        )
    return PostPage(items=[to_out(i) for i in items], next_cursor=next_cursor)


def _filter_time(ctx: PostContext, name: str, value: datetime | None) -> datetime | None:
    if value is None:
        return None
    try:
        return accepted_instant(value, ctx.settings, field=name)
    except TimingError as exc:
        raise ProblemError(
            422, "validation-failed", "A time in the filters is not valid.", [exc.problem]
        ) from None


# Each time order marks its cursors, so that one made for another order is refused rather than
# read as a position it is not.
_CURSOR_TAGS = {PostSort.SCHEDULED_ASC: 1, PostSort.SCHEDULED_DESC: 2}


def _after(sort: PostSort, cursor: str | None) -> tuple[datetime | None, uuid.UUID] | None:
    if sort is PostSort.CREATED_DESC:
        after_id = decode_cursor(cursor)
        return None if after_id is None else (None, after_id)
    return decode_position(cursor, _CURSOR_TAGS[sort])


@router.get("/{post_id:uuid}", response_model=PostOut, responses=NOT_FOUND)
async def get_post(ctx: ContextDep, post_id: uuid.UUID, response: Response) -> PostOut:
    """A post with every target's status, remote id and url, attempts and last error."""
    return _etag(response, await service.get_post(ctx, post_id))


def _parse_if_match(if_match: str | None) -> int:
    if if_match is None:
        raise ProblemError(
            428,
            "if-match-required",
            "Send If-Match with the post's revision (its ETag) to change it.",
        )
    try:
        return int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise ProblemError(
            412, "revision-mismatch", 'If-Match must be the post\'s ETag, e.g. "3".'
        ) from None


@router.patch(
    "/{post_id:uuid}", response_model=PostOut, responses={**NOT_FOUND, **CONFLICT, **PRECONDITION}
)
async def update_post(
    ctx: ContextDep,
    post_id: uuid.UUID,
    data: PostUpdate,
    response: Response,
    if_match: Annotated[str | None, Header(alias="If-Match")] = None,
) -> PostOut:
    """Change content, time or targets. Refused with 409 while a target is publishing."""
    revision = _parse_if_match(if_match)
    return _etag(response, await service.update_post(ctx, post_id, data, revision))


@router.delete("/{post_id:uuid}", response_model=PostOut, responses={**NOT_FOUND, **CONFLICT})
async def cancel_post(ctx: ContextDep, post_id: uuid.UUID, response: Response) -> PostOut:
    """Cancel every target not yet published; the post stays readable as cancelled."""
    return _etag(response, await service.cancel_post(ctx, post_id))


@router.post(
    "/{post_id:uuid}/publish-now", response_model=PostOut, responses={**NOT_FOUND, **CONFLICT}
)
async def publish_post_now(ctx: ContextDep, post_id: uuid.UUID, response: Response) -> PostOut:
    """Publish at once instead of at the scheduled time."""
    return _etag(response, await service.publish_now(ctx, post_id))


@router.post(
    "/{post_id:uuid}/targets/{target_id}/retry",
    response_model=PostOut,
    responses={**NOT_FOUND, **CONFLICT},
)
async def retry_target(
    ctx: ContextDep,
    post_id: uuid.UUID,
    target_id: uuid.UUID,
    response: Response,
    data: Annotated[TargetRetry | None, Body()] = None,
) -> PostOut:
    """Send a `failed` or `unknown` target again, now. An `unknown` one may already be live
    (its earlier request may have been published, and Herald keeps looking for it where the
    platform can be asked), so a retry could post it twice: check the platform first, then
    send `{"accept_duplicate_risk": true}`; without it the answer is 409
    `retry-may-post-twice`."""
    accept = data is not None and data.accept_duplicate_risk
    return _etag(response, await service.retry_target(ctx, post_id, target_id, accept))

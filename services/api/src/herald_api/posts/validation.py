"""Whether a post can be scheduled as it is: its time, its accounts, its pictures, and each
target platform's rules on the text and pictures it will publish.

Each check either raises one 422 ``invalid-post`` naming every problem it found, or, for
``validate_post``, returns the problems so a person can see them all before saving.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from herald_api.media import service as media_service
from herald_api.posts.context import PostContext
from herald_api.posts.schemas import PostValidate, TargetIn
from herald_api.problems import FieldProblem, ProblemError
from herald_api.timing import TimingError, resolve_scheduled_at
from herald_common import clock
from herald_common.db.models import PostTarget
from herald_common.db.repositories.accounts import AccountBrief, account_briefs
from herald_common.platforms.base import Media, PostContent
from herald_common.statuses import AccountStatus

# A scheduled time this far in the past is still accepted (clock skew, slow clients); older
# ones are refused, since publish-now says that intent plainly.
PAST_GRACE = timedelta(minutes=1)


def invalid(problems: Sequence[FieldProblem]) -> ProblemError:
    return ProblemError(422, "invalid-post", "The post cannot be scheduled as it is.", problems)


async def validate_post(ctx: PostContext, data: PostValidate) -> list[FieldProblem]:
    """Every problem that would stop this post from being scheduled, for every target at once.
    Writes nothing."""
    problems: list[FieldProblem] = []
    if data.scheduled_at is not None or data.timezone is not None:
        try:
            resolve_time(ctx, data.scheduled_at, data.timezone)
        except ProblemError as exc:
            problems += exc.errors
    accounts, account_problems = await _account_problems(ctx, data.targets)
    media, media_problems = await media_service.resolve(
        ctx.session, ctx.workspace_id, data.media_ids
    )
    return (
        problems
        + account_problems
        + media_problems
        + _content_problems(ctx, data.content, media, data.targets, accounts)
    )


def resolve_time(
    ctx: PostContext, scheduled_at: datetime | None, timezone: str | None
) -> datetime | None:
    """The UTC time a post is scheduled for, refusing one that is missing its half or past."""
    if scheduled_at is None:
        if timezone is not None:
            raise invalid([FieldProblem(field="scheduled_at", message="Give it with timezone.")])
        return None
    try:
        resolved = resolve_scheduled_at(scheduled_at, timezone, ctx.settings)
    except TimingError as exc:
        raise invalid([exc.problem]) from None
    if resolved < clock.now() - PAST_GRACE:
        raise invalid(
            [
                FieldProblem(
                    field="scheduled_at",
                    message="The time is in the past; use publish-now to publish at once.",
                )
            ]
        )
    return resolved


async def resolve_accounts(
    ctx: PostContext, targets: Sequence[TargetIn]
) -> dict[uuid.UUID, AccountBrief]:
    """The targets' accounts, refusing any that is not the workspace's or not active."""
    accounts, problems = await _account_problems(ctx, targets)
    if problems:
        raise invalid(problems)
    return accounts


async def _account_problems(
    ctx: PostContext, targets: Sequence[TargetIn]
) -> tuple[dict[uuid.UUID, AccountBrief], list[FieldProblem]]:
    accounts = await account_briefs(ctx.session, ctx.workspace_id, [t.account_id for t in targets])
    problems = []
    for i, target in enumerate(targets):
        account = accounts.get(target.account_id)
        if account is None:
            problems.append(
                FieldProblem(
                    field=f"targets[{i}].account_id",
                    message="No account with this id in this workspace.",
                )
            )
        elif account.status != AccountStatus.ACTIVE:
            problems.append(
                FieldProblem(
                    field=f"targets[{i}].account_id",
                    message=f"The account is {account.status.replace('_', ' ')}; reconnect it.",
                )
            )
    return accounts, problems


async def resolve_media(ctx: PostContext, media_ids: Sequence[uuid.UUID]) -> list[Media]:
    """The pictures a post names, refusing any that is not the workspace's."""
    media, problems = await media_service.resolve(ctx.session, ctx.workspace_id, media_ids)
    if problems:
        raise invalid(problems)
    return media


def check_publishable(
    ctx: PostContext,
    content: str,
    media: Sequence[Media],
    targets: Sequence[TargetIn],
    accounts: dict[uuid.UUID, AccountBrief],
) -> None:
    """Run each target's platform rules on the text and pictures it will publish."""
    problems = _content_problems(ctx, content, media, targets, accounts)
    if problems:
        raise invalid(problems)


def _content_problems(
    ctx: PostContext,
    content: str,
    media: Sequence[Media],
    targets: Sequence[TargetIn],
    accounts: dict[uuid.UUID, AccountBrief],
) -> list[FieldProblem]:
    """Problems with the post's own fields (``content``, ``media_ids[i]``) keep their path,
    their message naming the platform; the others are the target's (``targets[i]...``)."""
    problems: list[FieldProblem] = []
    for i, target in enumerate(targets):
        if target.account_id not in accounts:
            continue  # reported as an account problem
        platform = ctx.platforms[accounts[target.account_id].platform]
        text = target.content if target.content is not None else content
        text_path = f"targets[{i}].content" if target.content is not None else "content"
        found = platform.validate(
            PostContent(
                text=text,
                media=tuple(media),
                thread=tuple(target.thread),
                content_warning=target.content_warning,
                visibility=target.visibility,
            )
        )
        problems += [
            FieldProblem(field=_path(problem.field, text_path, i), message=problem.message)
            for problem in found
        ]
    return problems


def _path(field: str, text_path: str, target: int) -> str:
    if field == "content":
        return text_path
    if field == "media_ids" or field.startswith("media_ids["):
        return field
    return f"targets[{target}].{field}"


def as_target_in(target: PostTarget) -> TargetIn:
    """A stored target as the request that would make it, to check it again."""
    return TargetIn(
        account_id=target.account_id,
        content=target.content_override,
        thread=list(target.thread or []),
        content_warning=target.content_warning,
        visibility=target.visibility,
    )

"""The per-workspace monthly token quota: a calendar month in UTC, counted from usage rows."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.ai import errors, repository
from herald_common.settings import Settings


def month_of(now: datetime) -> tuple[datetime, datetime]:
    """The start of ``now``'s calendar month (UTC) and the start of the next: when it resets."""
    now = now.astimezone(UTC)
    start = datetime(now.year, now.month, 1, tzinfo=UTC)
    following = (
        datetime(now.year + 1, 1, 1, tzinfo=UTC)
        if now.month == 12
        else datetime(now.year, now.month + 1, 1, tzinfo=UTC)
    )
    return start, following


async def check_quota(
    session: AsyncSession, settings: Settings, workspace_id: uuid.UUID, now: datetime
) -> None:
    """Refuse (429 with when it resets) once the workspace has used its month's tokens.

    Checked before each call, so calls already running when the quota is reached may end a
    little over it; the next one is refused."""
    start, resets_at = month_of(now)
    used = await repository.tokens_used(session, workspace_id, start)
    if used >= settings.ai_monthly_token_quota:
        raise errors.quota_exceeded(used, settings.ai_monthly_token_quota, resets_at, now)

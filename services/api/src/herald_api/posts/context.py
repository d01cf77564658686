"""What every posts operation works within: one session, one workspace, the platforms' rules."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.platforms.base import Platform
from herald_common.settings import Settings


@dataclass(frozen=True, slots=True)
class PostContext:
    session: AsyncSession
    workspace_id: uuid.UUID
    settings: Settings
    platforms: dict[str, Platform]

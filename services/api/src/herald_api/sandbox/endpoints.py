"""What the sandbox platform has published, so users can see their posts "go out"."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from herald_api.deps import SessionDep, WorkspaceDep
from herald_api.posts.schemas import UtcDatetime
from herald_common.db.models import SandboxPublication

router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"])


class SandboxPublicationOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    text: str
    media: list[str] = Field(
        description="Each attached picture as the sandbox received it: its content type and "
        "the SHA-256 of its bytes."
    )
    published_at: UtcDatetime


class SandboxPublicationList(BaseModel):
    items: list[SandboxPublicationOut]


@router.get("/publications", response_model=SandboxPublicationList)
async def list_sandbox_publications(
    session: SessionDep,
    workspace_id: WorkspaceDep,
    account_id: Annotated[uuid.UUID | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SandboxPublicationList:
    """The sandbox's own record of what it published, newest first."""
    query = select(SandboxPublication).where(SandboxPublication.workspace_id == workspace_id)
    if account_id is not None:
        query = query.where(SandboxPublication.account_id == account_id)
    rows = await session.scalars(
        query.order_by(SandboxPublication.published_at.desc()).limit(limit)
    )
    return SandboxPublicationList(
        items=[SandboxPublicationOut.model_validate(r, from_attributes=True) for r in rows]
    )

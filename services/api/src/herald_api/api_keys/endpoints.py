"""HTTP for the workspace's API keys (admins and owners, never a key itself)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status

from herald_api.api_keys.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyList, ApiKeyOut
from herald_api.auth.permissions import Permission, Principal
from herald_api.deps import SessionDep, require
from herald_api.problems import NOT_FOUND, ProblemError
from herald_common import clock
from herald_common.db.models import ApiKey
from herald_common.db.repositories import workspaces as keys

router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])
KeyManager = Annotated[Principal, require(Permission.KEYS_MANAGE)]


def _out(record: ApiKey) -> ApiKeyOut:
    return ApiKeyOut.model_validate(record, from_attributes=True)


@router.get("", response_model=ApiKeyList)
async def list_api_keys(session: SessionDep, principal: KeyManager) -> ApiKeyList:
    """Every key of the workspace, revoked ones included, with when each was last used."""
    return ApiKeyList(
        items=[_out(k) for k in await keys.list_api_keys(session, principal.workspace_id)]
    )


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_api_key(
    session: SessionDep, principal: KeyManager, data: ApiKeyCreate, response: Response
) -> ApiKeyCreated:
    """Make a key for a program. The answer holds the key: the only time it is shown."""
    created = await keys.add_api_key(
        session, principal.workspace_id, data.name, scopes=data.scopes, created_by=principal.user_id
    )
    await session.commit()
    response.headers["Cache-Control"] = "no-store"
    return ApiKeyCreated(**_out(created.record).model_dump(), key=created.key)


@router.delete("/{key_id}", response_model=ApiKeyOut, responses=NOT_FOUND)
async def revoke_api_key(
    session: SessionDep, principal: KeyManager, key_id: uuid.UUID
) -> ApiKeyOut:
    """Revoke a key: it stops working at once. The record stays, marked revoked."""
    record = await keys.revoke_api_key(session, principal.workspace_id, key_id, clock.now())
    if record is None:
        raise ProblemError(404, "api-key-not-found", "No API key with this id in this workspace.")
    await session.commit()
    return _out(record)

"""FastAPI dependencies as ``Annotated`` aliases: the session, the caller's workspace, clients."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_common.db.repositories.workspaces import find_workspace_by_api_key
from herald_common.platforms.base import Platform


def get_resources(request: Request) -> Resources:
    resources: Resources = request.app.state.resources
    return resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(resources: ResourcesDep) -> AsyncIterator[AsyncSession]:
    """One session per request; the endpoint's service commits, anything else rolls back."""
    async with resources.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_redis(resources: ResourcesDep) -> Redis:
    return resources.redis


RedisDep = Annotated[Redis, Depends(get_redis)]


def get_platforms(resources: ResourcesDep) -> dict[str, Platform]:
    return resources.platforms


PlatformsDep = Annotated[dict[str, Platform], Depends(get_platforms)]

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer hk_...`")
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key, as an alternative header."
)


async def get_workspace_id(
    session: SessionDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    api_key: Annotated[str | None, Security(_api_key_header)],
) -> uuid.UUID:
    key = bearer.credentials if bearer is not None else api_key
    if not key:
        raise ProblemError(
            401,
            "unauthenticated",
            "Send an API key as `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    workspace_id = await find_workspace_by_api_key(session, key)
    if workspace_id is None:
        raise ProblemError(
            401,
            "invalid-api-key",
            "The API key is unknown or revoked.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return workspace_id


WorkspaceDep = Annotated[uuid.UUID, Depends(get_workspace_id)]

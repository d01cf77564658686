"""FastAPI dependencies as ``Annotated`` aliases: the session, clients, and the one
authorization layer.

Every dependency is ``async def``, even the trivial ones: FastAPI runs a plain ``def``
dependency in a worker thread, a thread hand-off per dependency per request (a tenth of the
API's CPU under load, bench/README.md). And each takes the ``Request`` rather than
``ResourcesDep`` to reach the shared clients: FastAPI solves a dependency's own dependencies
again wherever it is used, cached or not, and every layer costs (bench/README.md, API).

Every route that touches a workspace states what it needs with ``require(Permission.X)``
(herald_api.auth.permissions holds the whole policy). ``WorkspaceDep`` is the default for
content routes: reading with GET, writing (editor, or a key with the write scope) otherwise.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.auth import repository as auth_repository
from herald_api.auth.permissions import (
    ROLE_PERMISSIONS,
    CurrentUser,
    Permission,
    Principal,
    key_permissions,
)
from herald_api.auth.tokens import ACCESS, InvalidToken
from herald_api.mail import Courier
from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_common import clock
from herald_common.db.repositories.workspaces import API_KEY_PREFIX, find_active_key


def resources_of(request: Request) -> Resources:
    """The process's shared clients, opened by the app's lifespan."""
    resources: Resources = request.app.state.resources
    return resources


async def get_resources(request: Request) -> Resources:
    return resources_of(request)


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request; the endpoint's service commits, anything else rolls back."""
    async with resources_of(request).sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


_bearer = HTTPBearer(
    auto_error=False,
    description="An access token from `POST /v1/auth/login`, or an API key (`hk_...`).",
)
_api_key_header = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="An API key, as an alternative header."
)
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
ApiKeyHeaderDep = Annotated[str | None, Security(_api_key_header)]
WorkspaceHeader = Annotated[
    uuid.UUID | None,
    Header(
        alias="X-Workspace-ID",
        description="The workspace to act in. Optional for a user in exactly one workspace "
        "and for API keys (which belong to one); required for a user in several.",
    ),
]


def _unauthenticated(slug: str, detail: str, *, invalid_token: bool = False) -> ProblemError:
    challenge = 'Bearer error="invalid_token"' if invalid_token else "Bearer"
    return ProblemError(401, slug, detail, headers={"WWW-Authenticate": challenge})


def _credential(bearer: HTTPAuthorizationCredentials | None, api_key: str | None) -> str:
    credential = bearer.credentials if bearer is not None else api_key
    if not credential:
        raise _unauthenticated(
            "unauthenticated",
            "Send an access token or an API key as `Authorization: Bearer <token>` "
            "(or an API key as `X-API-Key: <key>`).",
        )
    return credential


def _read_access_token(resources: Resources, token: str) -> CurrentUser:
    try:
        claims = resources.tokens.read(token, ACCESS)
        return CurrentUser(uuid.UUID(claims["sub"]), uuid.UUID(str(claims["sid"])))
    except (InvalidToken, KeyError, ValueError):
        raise _unauthenticated(
            "invalid-token",
            "The access token is invalid or expired; refresh it or sign in again.",
            invalid_token=True,
        ) from None


def _workspace_not_found() -> ProblemError:
    return ProblemError(404, "workspace-not-found", "No such workspace among yours.")


async def get_principal(
    request: Request,
    session: SessionDep,
    bearer: BearerDep,
    api_key: ApiKeyHeaderDep,
    workspace_id: WorkspaceHeader = None,
) -> Principal:
    """Who is calling, in which workspace, allowed to do what."""
    resources = resources_of(request)
    credential = _credential(bearer, api_key)
    if credential.startswith(API_KEY_PREFIX):
        record = await find_active_key(session, credential)
        if record is None:
            raise _unauthenticated("invalid-api-key", "The API key is unknown or revoked.")
        if workspace_id is not None and workspace_id != record.workspace_id:
            raise _workspace_not_found()
        resources.key_usage.touch(record.id)
        return Principal(
            workspace_id=record.workspace_id,
            permissions=key_permissions(record.scopes),
            api_key_id=record.id,
        )
    user = _read_access_token(resources, credential)
    memberships = await auth_repository.session_memberships(
        session, user.user_id, user.session_id, workspace_id, clock.now()
    )
    if memberships is None:
        raise _unauthenticated(
            "session-ended", "This sign-in has ended; sign in again.", invalid_token=True
        )
    if workspace_id is not None and not memberships:
        raise _workspace_not_found()
    if not memberships:
        raise ProblemError(
            404,
            "no-workspace",
            "You are not a member of any workspace yet: create one with POST /v1/workspaces "
            "or accept an invitation.",
        )
    if len(memberships) > 1:
        raise ProblemError(
            400,
            "workspace-required",
            "You are a member of several workspaces: name one in the X-Workspace-ID header.",
        )
    membership = memberships[0]
    return Principal(
        workspace_id=membership.workspace_id,
        permissions=ROLE_PERMISSIONS[membership.role],
        user_id=user.user_id,
        role=membership.role,
    )


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def check_permission(principal: Principal, permission: Permission) -> Principal:
    """Raise 403 unless ``principal`` holds ``permission``. Routes use ``require``; services
    call this only where the permission depends on the data (e.g. the role being granted)."""
    if permission not in principal.permissions:
        caller = f"a {principal.role} " if principal.role else "this API key "
        raise ProblemError(
            403, "forbidden", f"This needs the {permission} permission, which {caller}lacks."
        )
    return principal


def require(permission: Permission) -> Any:
    """A dependency that answers 403 unless the caller holds ``permission``:
    ``caller: Annotated[Principal, require(Permission.KEYS_MANAGE)]``."""

    async def permitted(principal: PrincipalDep) -> Principal:
        return check_permission(principal, permission)

    return Depends(permitted)


async def get_workspace_id(request: Request, principal: PrincipalDep) -> uuid.UUID:
    """The caller's workspace, for reading content (GET) or writing it (anything else)."""
    reading = request.method in {"GET", "HEAD", "OPTIONS"}
    permission = Permission.CONTENT_READ if reading else Permission.CONTENT_WRITE
    return check_permission(principal, permission).workspace_id


WorkspaceDep = Annotated[uuid.UUID, Depends(get_workspace_id)]


async def get_current_user(
    request: Request, session: SessionDep, bearer: BearerDep, api_key: ApiKeyHeaderDep
) -> CurrentUser:
    """A person signed in with an access token, for routes about them rather than a workspace."""
    resources = resources_of(request)
    credential = _credential(bearer, api_key)
    if credential.startswith(API_KEY_PREFIX):
        if await find_active_key(session, credential) is None:
            raise _unauthenticated("invalid-api-key", "The API key is unknown or revoked.")
        raise ProblemError(
            403, "user-token-required", "This route acts for a person; API keys cannot use it."
        )
    user = _read_access_token(resources, credential)
    live = await auth_repository.live_session(session, user.session_id, clock.now())
    if live is None or live.user_id != user.user_id:
        raise _unauthenticated(
            "session-ended", "This sign-in has ended; sign in again.", invalid_token=True
        )
    return user


CurrentUserDep = Annotated[CurrentUser, Depends(get_current_user)]


async def get_postman(request: Request) -> Courier:
    return resources_of(request).courier


PostmanDep = Annotated[Courier, Depends(get_postman)]

"""HTTP for social accounts."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Body, Query, Response, status
from sqlalchemy.exc import IntegrityError

from herald_api.accounts import connect, disconnect
from herald_api.accounts.problems import connect_problems
from herald_api.accounts.schemas import (
    AccountCreate,
    AccountList,
    AccountOut,
    AuthorizationStarted,
    ConnectablePlatform,
    ConnectCredentials,
    NoCredentials,
    OAuthPlatform,
)
from herald_api.auth.permissions import Permission, Principal
from herald_api.deps import ResourcesDep, SessionDep, WorkspaceDep, require
from herald_api.problems import CONFLICT, NOT_FOUND, ProblemError, Responses, problem_doc
from herald_common.db.models import SocialAccount
from herald_common.db.repositories import accounts
from herald_common.statuses import AccountStatus

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
# The platform's redirect back to Herald: no credentials, the single-use state names the
# workspace that started the connection.
callback_router = APIRouter(prefix="/v1/accounts", tags=["accounts"])
CONNECT_RESPONSES: Responses = {
    409: problem_doc("Connecting this platform is not configured on this Herald."),
    422: problem_doc(
        "Invalid fields; credentials the platform refused (`credentials-refused`); a body for "
        "another platform (`wrong-credentials`); an address Herald may not fetch "
        "(`url-not-allowed`: not https, userinfo, or a private, loopback, link-local, "
        "multicast or reserved address); a Mastodon instance that refused Herald's "
        "application (`app-registration-refused`)."
    ),
    502: problem_doc("The platform could not be reached (or is rate limiting Herald); try again."),
}
CALLBACK_RESPONSES: Responses = {
    400: problem_doc(
        "Unknown, expired or used state; the person declined; or the platform refused the "
        "code (e.g. a wrong PKCE verifier)."
    ),
    409: problem_doc("Connecting this platform is not configured on this Herald."),
    422: problem_doc(
        "Invalid fields; or the Mastodon instance's address is no longer one Herald may fetch "
        "(`url-not-allowed`)."
    ),
    502: problem_doc("The platform could not be reached; try again."),
}


def to_out(account: SocialAccount) -> AccountOut:
    return AccountOut.model_validate(account, from_attributes=True)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=AccountOut, responses=CONFLICT)
async def create_account(
    session: SessionDep,
    principal: Annotated[Principal, require(Permission.ACCOUNTS_MANAGE)],
    data: AccountCreate,
) -> AccountOut:
    """Add a sandbox account, so the whole flow can be tried with no credentials."""
    account = SocialAccount(
        workspace_id=principal.workspace_id,
        platform=data.platform,
        external_id=data.handle.lower(),
        handle=data.handle,
        display_name=data.display_name,
    )
    try:
        await accounts.add_account(session, account)
        await session.commit()
    except IntegrityError:
        raise ProblemError(
            409, "account-exists", f"A {data.platform} account @{data.handle} already exists."
        ) from None
    return to_out(account)


@router.get("", response_model=AccountList)
async def list_accounts(session: SessionDep, workspace_id: WorkspaceDep) -> AccountList:
    """Every account of the workspace."""
    return AccountList(
        items=[to_out(a) for a in await accounts.list_accounts(session, workspace_id)]
    )


@router.get("/{account_id}", response_model=AccountOut, responses=NOT_FOUND)
async def get_account(
    session: SessionDep, workspace_id: WorkspaceDep, account_id: uuid.UUID
) -> AccountOut:
    account = await accounts.get_account(session, workspace_id, account_id)
    if account is None:
        raise ProblemError(404, "account-not-found", "No account with this id in this workspace.")
    return to_out(account)


@router.post(
    "/connect/{platform}",
    response_model=AuthorizationStarted | AccountOut,
    responses={
        201: {"model": AccountOut, "description": "Connected with the credentials sent."},
        **CONNECT_RESPONSES,
    },
)
async def connect_account(
    resources: ResourcesDep,
    session: SessionDep,
    principal: Annotated[Principal, require(Permission.ACCOUNTS_MANAGE)],
    platform: ConnectablePlatform,
    response: Response,
    credentials: Annotated[NoCredentials | ConnectCredentials | None, Body()] = None,
) -> AuthorizationStarted | AccountOut:
    """Connect an account. OAuth platforms (X, LinkedIn) take no body and answer 200 with the
    URL to send the person to; the platform brings them back to the callback, which adds the
    account. Mastodon does the same given only `instance_url` (Herald registers its
    application on the instance the first time). Bluesky, Telegram, Discord, and Mastodon with
    an `access_token`, take their credentials in the body, which are checked with the
    platform, stored encrypted, and answer 201 with the account. Connecting an account that is
    already there updates it; one that needed re-authorization becomes active again and its
    held posts are rescheduled."""
    if isinstance(credentials, NoCredentials):
        credentials = None  # `{}` is no body, as a client library may send for "nothing"
    with connect_problems():
        connected = await connect.connect(
            resources, session, principal, platform.value, credentials
        )
    if isinstance(connected, AuthorizationStarted):
        return connected
    response.status_code = status.HTTP_201_CREATED
    return to_out(connected.account)


@callback_router.get(
    "/callback/{platform}", response_model=AccountOut, responses=CALLBACK_RESPONSES
)
async def oauth_callback(
    resources: ResourcesDep,
    session: SessionDep,
    platform: OAuthPlatform,
    state: Annotated[str | None, Query(max_length=512)] = None,
    code: Annotated[str | None, Query(max_length=2048)] = None,
    error: Annotated[str | None, Query(max_length=256)] = None,
) -> AccountOut:
    """Where the platform (X, LinkedIn, or the person's Mastodon instance) redirects after the
    person authorized Herald (OAuth 2.0 redirect URI). Public: the single-use ``state``
    identifies the connection that was started."""
    with connect_problems():
        saved = await connect.callback(resources, session, platform.value, code, state, error)
    return to_out(saved.account)


@router.delete("/{account_id}", response_model=AccountOut, responses=NOT_FOUND)
async def disconnect_account(
    resources: ResourcesDep,
    session: SessionDep,
    principal: Annotated[Principal, require(Permission.ACCOUNTS_MANAGE)],
    account_id: uuid.UUID,
) -> AccountOut:
    """Disconnect an account: its tokens are wiped (and revoked where the platform allows it:
    X, and Mastodon accounts connected through OAuth) and it becomes ``disconnected``. Its
    posts stay; connecting it again brings it back."""
    account = await accounts.get_account(session, principal.workspace_id, account_id)
    if account is None:
        raise ProblemError(404, "account-not-found", "No account with this id in this workspace.")
    await disconnect.revoke(resources, session, account)
    account.access_token_enc = None
    account.refresh_token_enc = None
    account.token_expires_at = None
    account.status = AccountStatus.DISCONNECTED.value
    await session.commit()
    return to_out(account)

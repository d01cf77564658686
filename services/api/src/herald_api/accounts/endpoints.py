"""HTTP for social accounts."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, status
from sqlalchemy.exc import IntegrityError

from herald_api.accounts.schemas import AccountCreate, AccountList, AccountOut
from herald_api.auth.permissions import Permission, Principal
from herald_api.deps import SessionDep, WorkspaceDep, require
from herald_api.problems import CONFLICT, NOT_FOUND, ProblemError
from herald_common.db.models import SocialAccount
from herald_common.db.repositories import accounts

router = APIRouter(prefix="/v1/accounts", tags=["accounts"])


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

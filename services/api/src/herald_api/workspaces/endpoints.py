"""HTTP for workspaces, members and invitations; thin.

``/v1/workspaces`` lists and creates the signed-in user's workspaces; ``/v1/workspace`` is
the one the request acts in (``X-Workspace-ID``, see herald_api.deps).
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Response, status

from herald_api.auth.permissions import Permission, Principal
from herald_api.auth.schemas import MembershipOut
from herald_api.deps import (
    CurrentUserDep,
    PostmanDep,
    ResourcesDep,
    SessionDep,
    require,
)
from herald_api.problems import CONFLICT, FORBIDDEN, NOT_FOUND, Responses, problem_doc
from herald_api.workspaces import repository, service
from herald_api.workspaces.schemas import (
    InvitationAccept,
    InvitationCreate,
    InvitationList,
    InvitationOut,
    MemberList,
    MemberOut,
    MemberUpdate,
    WorkspaceCreate,
    WorkspaceList,
    WorkspaceOut,
    WorkspaceUpdate,
)
from herald_common import clock
from herald_common.db.models import Invitation, Workspace

# Routes about the signed-in person (no workspace chosen yet).
user_router = APIRouter(prefix="/v1", tags=["workspaces"])
# Routes acting in the chosen workspace.
router = APIRouter(prefix="/v1/workspace", tags=["workspaces"])

Reader = Annotated[Principal, require(Permission.CONTENT_READ)]
MembersReader = Annotated[Principal, require(Permission.MEMBERS_READ)]
MembersManager = Annotated[Principal, require(Permission.MEMBERS_MANAGE)]
Owner = Annotated[Principal, require(Permission.WORKSPACE_MANAGE)]
Deleter = Annotated[Principal, require(Permission.WORKSPACE_DELETE)]
BAD_INVITATION: Responses = {400: problem_doc("The invitation is invalid, used or expired.")}


def _workspace_out(workspace: Workspace) -> WorkspaceOut:
    return WorkspaceOut(id=workspace.id, name=workspace.name, created_at=workspace.created_at)


def _invitation_out(invitation: Invitation) -> InvitationOut:
    return InvitationOut.model_validate(invitation, from_attributes=True)


@user_router.get("/workspaces", response_model=WorkspaceList, responses=FORBIDDEN)
async def list_workspaces(session: SessionDep, user: CurrentUserDep) -> WorkspaceList:
    """The workspaces you belong to and your role in each."""
    return WorkspaceList(items=await service.user_workspaces(session, user))


@user_router.post(
    "/workspaces",
    status_code=status.HTTP_201_CREATED,
    response_model=MembershipOut,
    responses=FORBIDDEN,
)
async def create_workspace(
    session: SessionDep, user: CurrentUserDep, data: WorkspaceCreate
) -> MembershipOut:
    """Create a workspace; you are its owner."""
    return await service.create(session, user, data.name)


@user_router.post(
    "/invitations/accept",
    response_model=MembershipOut,
    responses={**FORBIDDEN, **CONFLICT, **BAD_INVITATION},
)
async def accept_invitation(
    session: SessionDep, user: CurrentUserDep, data: InvitationAccept
) -> MembershipOut:
    """Join a workspace with an invitation's token (sent to your email)."""
    return await service.accept_invitation(session, user, data.token)


@router.get("", response_model=WorkspaceOut)
async def get_workspace(session: SessionDep, principal: Reader) -> WorkspaceOut:
    """The workspace this request acts in."""
    return _workspace_out(await service.get(session, principal))


@router.patch("", response_model=WorkspaceOut)
async def update_workspace(
    session: SessionDep, principal: Owner, data: WorkspaceUpdate
) -> WorkspaceOut:
    """Rename the workspace (owners)."""
    return _workspace_out(await service.rename(session, principal, data.name))


@router.delete("", status_code=status.HTTP_204_NO_CONTENT, response_class=Response)
async def delete_workspace(session: SessionDep, principal: Deleter) -> None:
    """Delete the workspace and everything in it: posts, accounts, keys, members (owners)."""
    await service.delete(session, principal)


@router.get("/members", response_model=MemberList)
async def list_members(session: SessionDep, principal: MembersReader) -> MemberList:
    """Everyone in the workspace, with their role."""
    return MemberList(
        items=[
            service.member_out(m, email)
            for m, email in await repository.members(session, principal.workspace_id)
        ]
    )


@router.patch("/members/{user_id}", response_model=MemberOut, responses={**NOT_FOUND, **CONFLICT})
async def update_member(
    session: SessionDep, principal: MembersManager, user_id: uuid.UUID, data: MemberUpdate
) -> MemberOut:
    """Change a member's role. Only owners grant or take away the owner role, and the last
    owner stays an owner."""
    return await service.change_role(session, principal, user_id, data.role)


@router.delete(
    "/members/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**NOT_FOUND, **CONFLICT},
)
async def remove_member(session: SessionDep, principal: MembersManager, user_id: uuid.UUID) -> None:
    """Remove a member (only owners remove an owner; never the last one)."""
    await service.remove_member(session, principal, user_id)


@router.get("/invitations", response_model=InvitationList)
async def list_invitations(session: SessionDep, principal: MembersReader) -> InvitationList:
    """Invitations not yet accepted, revoked or expired."""
    pending = await repository.pending_invitations(session, principal.workspace_id, clock.now())
    return InvitationList(items=[_invitation_out(i) for i in pending])


@router.post(
    "/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationOut,
    responses=CONFLICT,
)
async def create_invitation(
    session: SessionDep,
    resources: ResourcesDep,
    postman: PostmanDep,
    principal: MembersManager,
    data: InvitationCreate,
) -> InvitationOut:
    """Invite someone by email with a role; they get a link to accept."""
    invitation = await service.invite(session, resources.settings, postman, principal, data)
    return _invitation_out(invitation)


@router.delete(
    "/invitations/{invitation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def revoke_invitation(
    session: SessionDep, principal: MembersManager, invitation_id: uuid.UUID
) -> None:
    """Withdraw an invitation not yet accepted."""
    await service.revoke_invitation(session, principal, invitation_id)

"""What the workspace routes do: create, rename and delete workspaces, manage members and
invitations. Each public function is one transaction, committed here."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api import emails
from herald_api.auth import repository as users
from herald_api.auth.permissions import CurrentUser, Permission, Principal
from herald_api.auth.schemas import MembershipOut
from herald_api.auth.tokens import INVITATION_TOKEN_PREFIX, random_token, token_hash
from herald_api.deps import check_permission
from herald_api.mail import Courier
from herald_api.problems import ProblemError
from herald_api.workspaces import repository
from herald_api.workspaces.schemas import InvitationCreate, MemberOut
from herald_common import clock
from herald_common.db.models import Invitation, Membership, Workspace
from herald_common.db.repositories.workspaces import create_workspace
from herald_common.roles import Role
from herald_common.settings import Settings


def _member_not_found() -> ProblemError:
    return ProblemError(404, "member-not-found", "No member with this user id in this workspace.")


def member_out(membership: Membership, email: str) -> MemberOut:
    return MemberOut(
        user_id=membership.user_id,
        email=email,
        role=Role(membership.role),
        joined_at=membership.created_at,
    )


async def create(session: AsyncSession, user: CurrentUser, name: str) -> MembershipOut:
    workspace = await create_workspace(session, name)
    await repository.add_membership(session, workspace.id, user.user_id, Role.OWNER)
    await session.commit()
    return MembershipOut(workspace_id=workspace.id, workspace_name=workspace.name, role=Role.OWNER)


async def get(session: AsyncSession, principal: Principal) -> Workspace:
    workspace = await repository.get_workspace(session, principal.workspace_id)
    if workspace is None:  # deleted by another request since authentication
        raise ProblemError(404, "workspace-not-found", "No such workspace among yours.")
    return workspace


async def rename(session: AsyncSession, principal: Principal, name: str) -> Workspace:
    workspace = await get(session, principal)
    workspace.name = name
    await session.commit()
    return workspace


async def delete(session: AsyncSession, principal: Principal) -> None:
    await repository.delete_workspace(session, principal.workspace_id)
    await session.commit()


async def change_role(
    session: AsyncSession, principal: Principal, user_id: uuid.UUID, role: Role
) -> MemberOut:
    found = await repository.get_member(session, principal.workspace_id, user_id)
    if found is None:
        raise _member_not_found()
    membership, email = found
    if Role.OWNER in (role, membership.role):
        check_permission(principal, Permission.OWNERS_MANAGE)
    if membership.role == Role.OWNER and role != Role.OWNER:
        await _keep_an_owner(session, principal.workspace_id, user_id)
    membership.role = role
    await session.commit()
    return member_out(membership, email)


async def remove_member(session: AsyncSession, principal: Principal, user_id: uuid.UUID) -> None:
    found = await repository.get_member(session, principal.workspace_id, user_id)
    if found is None:
        raise _member_not_found()
    membership, _ = found
    if membership.role == Role.OWNER:
        check_permission(principal, Permission.OWNERS_MANAGE)
        await _keep_an_owner(session, principal.workspace_id, user_id)
    await repository.remove_member(session, membership)
    await session.commit()


async def _keep_an_owner(
    session: AsyncSession, workspace_id: uuid.UUID, leaving: uuid.UUID
) -> None:
    owners = await repository.lock_owners(session, workspace_id)
    if not [owner for owner in owners if owner != leaving]:
        raise ProblemError(
            409,
            "last-owner",
            "A workspace needs an owner: make someone else owner first, or delete the workspace.",
        )


async def invite(
    session: AsyncSession,
    settings: Settings,
    postman: Courier,
    principal: Principal,
    data: InvitationCreate,
) -> Invitation:
    if data.role == Role.OWNER:
        check_permission(principal, Permission.OWNERS_MANAGE)
    invited = await users.get_user_by_email(session, data.email)
    if invited is not None and await repository.is_member(
        session, principal.workspace_id, invited.id
    ):
        raise ProblemError(409, "already-member", "This person is already a member.")
    workspace = await get(session, principal)
    token = random_token(INVITATION_TOKEN_PREFIX)
    invitation = await repository.add_invitation(
        session,
        Invitation(
            workspace_id=principal.workspace_id,
            email=data.email,
            role=data.role,
            token_hash=token_hash(token),
            invited_by=principal.user_id,
            expires_at=clock.now() + timedelta(seconds=settings.invitation_ttl_seconds),
        ),
    )
    await session.commit()
    postman.send(emails.invitation(settings, data.email, workspace.name, data.role, token))
    return invitation


async def revoke_invitation(
    session: AsyncSession, principal: Principal, invitation_id: uuid.UUID
) -> None:
    if not await repository.revoke_invitation(
        session, principal.workspace_id, invitation_id, clock.now()
    ):
        raise ProblemError(
            404, "invitation-not-found", "No pending invitation with this id in this workspace."
        )
    await session.commit()


async def accept_invitation(session: AsyncSession, user: CurrentUser, token: str) -> MembershipOut:
    """Join the inviting workspace. The invitation must have been sent to this user's email."""
    account = await users.get_user(session, user.user_id)
    now = clock.now()
    invitation = (
        None
        if account is None
        else await repository.take_invitation(session, token_hash(token), account.email, now)
    )
    if account is None or invitation is None:
        raise ProblemError(
            400,
            "invalid-invitation",
            "The invitation is invalid, used, expired or sent to another email.",
        )
    if account.email_verified_at is None:
        account.email_verified_at = now  # the mailed token reached this address
    try:
        await repository.add_membership(
            session, invitation.workspace_id, user.user_id, Role(invitation.role)
        )
    except IntegrityError:
        raise ProblemError(409, "already-member", "You are already a member.") from None
    workspace = await repository.get_workspace(session, invitation.workspace_id)
    assert workspace is not None
    await session.commit()
    return MembershipOut(
        workspace_id=workspace.id, workspace_name=workspace.name, role=Role(invitation.role)
    )


async def user_workspaces(session: AsyncSession, user: CurrentUser) -> list[MembershipOut]:
    return [
        MembershipOut(workspace_id=w.id, workspace_name=w.name, role=Role(role))
        for w, role in await repository.user_workspaces(session, user.user_id)
    ]

"""Every query on workspaces, their memberships and invitations made by the API."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import Invitation, Membership, User, Workspace
from herald_common.roles import Role


async def add_membership(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID, role: Role
) -> Membership:
    membership = Membership(workspace_id=workspace_id, user_id=user_id, role=role)
    session.add(membership)
    await session.flush()
    return membership


async def user_workspaces(
    session: AsyncSession, user_id: uuid.UUID
) -> Sequence[tuple[Workspace, str]]:
    """The user's workspaces and their role in each, oldest membership first."""
    rows = await session.execute(
        select(Workspace, Membership.role)
        .join(Membership, Membership.workspace_id == Workspace.id)
        .where(Membership.user_id == user_id)
        .order_by(Membership.created_at, Workspace.id)
    )
    return [(workspace, role) for workspace, role in rows.all()]


async def get_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> Workspace | None:
    return await session.get(Workspace, workspace_id)


async def delete_workspace(session: AsyncSession, workspace_id: uuid.UUID) -> None:
    """Everything the workspace owns goes with it (ON DELETE CASCADE)."""
    await session.execute(delete(Workspace).where(Workspace.id == workspace_id))


async def members(
    session: AsyncSession, workspace_id: uuid.UUID
) -> Sequence[tuple[Membership, str]]:
    rows = await session.execute(
        select(Membership, User.email)
        .join(User, User.id == Membership.user_id)
        .where(Membership.workspace_id == workspace_id)
        .order_by(Membership.created_at, Membership.id)
    )
    return [(membership, email) for membership, email in rows.all()]


async def get_member(
    session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID
) -> tuple[Membership, str] | None:
    row = (
        await session.execute(
            select(Membership, User.email)
            .join(User, User.id == Membership.user_id)
            .where(Membership.workspace_id == workspace_id, Membership.user_id == user_id)
            .with_for_update(of=Membership)
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def lock_owners(session: AsyncSession, workspace_id: uuid.UUID) -> list[uuid.UUID]:
    """The owners' user ids, locked, so two demotions cannot both leave "another owner"."""
    rows = await session.scalars(
        select(Membership.user_id)
        .where(Membership.workspace_id == workspace_id, Membership.role == Role.OWNER)
        .with_for_update()
    )
    return list(rows)


async def remove_member(session: AsyncSession, membership: Membership) -> None:
    await session.delete(membership)
    await session.flush()


async def add_invitation(session: AsyncSession, invitation: Invitation) -> Invitation:
    session.add(invitation)
    await session.flush()
    return invitation


async def pending_invitations(
    session: AsyncSession, workspace_id: uuid.UUID, now: datetime
) -> Sequence[Invitation]:
    result = await session.scalars(
        select(Invitation)
        .where(
            Invitation.workspace_id == workspace_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .order_by(Invitation.id)
    )
    return result.all()


async def revoke_invitation(
    session: AsyncSession, workspace_id: uuid.UUID, invitation_id: uuid.UUID, now: datetime
) -> bool:
    revoked = await session.scalar(
        update(Invitation)
        .where(
            Invitation.workspace_id == workspace_id,
            Invitation.id == invitation_id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=now)
        .returning(Invitation.id)
    )
    return revoked is not None


async def take_invitation(
    session: AsyncSession, token_hash: bytes, email: str, now: datetime
) -> Invitation | None:
    """Accept the live invitation with this token, if it was sent to ``email``; once only."""
    return await session.scalar(
        update(Invitation)
        .where(
            Invitation.token_hash == token_hash,
            func.lower(Invitation.email) == email,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
            Invitation.expires_at > now,
        )
        .values(accepted_at=now)
        .returning(Invitation)
    )


async def is_member(session: AsyncSession, workspace_id: uuid.UUID, user_id: uuid.UUID) -> bool:
    found = await session.scalar(
        select(Membership.id).where(
            Membership.workspace_id == workspace_id, Membership.user_id == user_id
        )
    )
    return found is not None

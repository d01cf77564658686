"""Every query on users, their sign-in sessions and refresh tokens."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from herald_common.db.models import AuthSession, Membership, RefreshToken, User
from herald_common.roles import Role


async def get_user(session: AsyncSession, user_id: uuid.UUID) -> User | None:
    return await session.get(User, user_id)


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def add_user(session: AsyncSession, email: str, password_hash: str) -> User:
    """Flushes, so a taken email raises IntegrityError here."""
    user = User(email=email, password_hash=password_hash)
    session.add(user)
    await session.flush()
    return user


async def open_session(
    session: AsyncSession, user_id: uuid.UUID, expires_at: datetime, refresh_hash: bytes
) -> AuthSession:
    auth_session = AuthSession(user_id=user_id, expires_at=expires_at)
    session.add(auth_session)
    await session.flush()
    session.add(RefreshToken(session_id=auth_session.id, token_hash=refresh_hash))
    await session.flush()
    return auth_session


@dataclass(frozen=True, slots=True)
class RefreshUse:
    """What presenting a refresh token found."""

    session_id: uuid.UUID | None  # None: no such token
    reused: bool  # the token had already been exchanged: someone else holds a copy


async def use_refresh_token(session: AsyncSession, token_hash: bytes, now: datetime) -> RefreshUse:
    """Mark the token used, once. Of two requests racing with one token, one wins and the
    other sees it used, which is treated as reuse (a thief and the owner look the same)."""
    used = await session.scalar(
        update(RefreshToken)
        .where(RefreshToken.token_hash == token_hash, RefreshToken.used_at.is_(None))
        .values(used_at=now)
        .returning(RefreshToken.session_id)
    )
    if used is not None:
        return RefreshUse(used, reused=False)
    known = await session.scalar(
        select(RefreshToken.session_id).where(RefreshToken.token_hash == token_hash)
    )
    return RefreshUse(known, reused=known is not None)


async def add_refresh_token(
    session: AsyncSession, session_id: uuid.UUID, token_hash: bytes
) -> None:
    session.add(RefreshToken(session_id=session_id, token_hash=token_hash))
    await session.flush()


async def live_session(
    session: AsyncSession, session_id: uuid.UUID, now: datetime
) -> AuthSession | None:
    return await session.scalar(
        select(AuthSession).where(
            AuthSession.id == session_id,
            AuthSession.revoked_at.is_(None),
            AuthSession.expires_at > now,
        )
    )


async def revoke_session(
    session: AsyncSession, session_id: uuid.UUID, reason: str, now: datetime
) -> None:
    await session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )


async def revoke_user_sessions(
    session: AsyncSession,
    user_id: uuid.UUID,
    reason: str,
    now: datetime,
    *,
    keep: uuid.UUID | None = None,
) -> None:
    query = update(AuthSession).where(
        AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(AuthSession.id != keep)
    await session.execute(query.values(revoked_at=now, revoked_reason=reason))


@dataclass(frozen=True, slots=True)
class SessionMembership:
    workspace_id: uuid.UUID
    role: Role


async def session_memberships(
    session: AsyncSession,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    workspace_id: uuid.UUID | None,
    now: datetime,
) -> list[SessionMembership] | None:
    """The caller's membership in ``workspace_id`` (or, without one, up to two of their
    memberships, enough to tell "exactly one"), in one query on every authenticated request.

    None when the session is revoked or expired.
    """
    on = and_(Membership.user_id == AuthSession.user_id)
    if workspace_id is not None:
        on = and_(on, Membership.workspace_id == workspace_id)
    rows = (
        await session.execute(
            select(AuthSession.id, Membership.workspace_id, Membership.role)
            .outerjoin(Membership, on)
            .where(
                AuthSession.id == session_id,
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > now,
            )
            .order_by(Membership.created_at)
            .limit(2)
        )
    ).all()
    if not rows:
        return None
    return [
        SessionMembership(row.workspace_id, Role(row.role))
        for row in rows
        if row.workspace_id is not None
    ]


async def set_password(
    session: AsyncSession, user: User, password_hash: str, *, verified_at: datetime | None = None
) -> None:
    user.password_hash = password_hash
    if verified_at is not None and user.email_verified_at is None:
        user.email_verified_at = verified_at
    await session.flush()

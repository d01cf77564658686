"""People in workspaces for tests: a user with a role, signed in, made straight in the database
(the sign-up and login routes have tests of their own in tests/api/test_auth.py)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.auth.passwords import PasswordHasher
from herald_api.auth.repository import add_user, open_session
from herald_api.auth.tokens import REFRESH_TOKEN_PREFIX, TokenSigner, random_token, token_hash
from herald_api.workspaces.repository import add_membership
from herald_common import clock
from herald_common.roles import Role
from herald_common.settings import Settings

PASSWORD = "correct horse battery staple"


@dataclass(frozen=True, slots=True)
class Member:
    user_id: uuid.UUID
    email: str
    workspace_id: uuid.UUID
    role: Role
    access_token: str
    refresh_token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}


async def make_member(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    workspace_id: uuid.UUID,
    role: Role,
    email: str | None = None,
) -> Member:
    email = email or f"{role}-{uuid.uuid4().hex[:8]}@example.com"
    hasher = PasswordHasher(settings)
    try:
        password_hash = await hasher.hash(PASSWORD)
    finally:
        hasher.close()
    refresh = random_token(REFRESH_TOKEN_PREFIX)
    async with sessions.begin() as session:
        user = await add_user(session, email, password_hash)
        await add_membership(session, workspace_id, user.id, role)
        auth_session = await open_session(
            session, user.id, clock.now() + timedelta(days=1), token_hash(refresh)
        )
    access = TokenSigner(settings).access_token(user.id, auth_session.id)
    return Member(user.id, email, workspace_id, role, access, refresh)

"""``herald-seed-dev``: the dev workspace, its API key, a sandbox account and (with
``--password``) a demo user who owns the workspace, idempotently.

Prints one JSON line: ``{"workspace_id", "account_id"}``, plus ``"email"`` with a demo user.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from sqlalchemy import select

from herald_api.auth.passwords import PasswordHasher
from herald_api.auth.repository import add_user, get_user_by_email, set_password
from herald_api.workspaces.repository import add_membership, is_member
from herald_common import clock
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.db.models import SocialAccount
from herald_common.db.repositories.workspaces import add_api_key, create_workspace, find_key
from herald_common.roles import Role
from herald_common.settings import get_settings

DEV_HANDLE = "herald-dev"
DEMO_EMAIL = "demo@herald.dev"


async def seed(
    api_key: str, email: str = DEMO_EMAIL, password: str | None = None
) -> dict[str, str]:
    settings = get_settings()
    engine = create_engine(settings)
    hasher = PasswordHasher(settings)
    try:
        async with create_session_factory(engine).begin() as session:
            existing = await find_key(session, api_key)
            if existing is not None:
                workspace_id = existing.workspace_id
            else:
                workspace_id = (await create_workspace(session, "Dev workspace")).id
                await add_api_key(session, workspace_id, "dev key", api_key)
            account = await session.scalar(
                select(SocialAccount).where(
                    SocialAccount.workspace_id == workspace_id,
                    SocialAccount.platform == "sandbox",
                    SocialAccount.external_id == DEV_HANDLE,
                )
            )
            if account is None:
                account = SocialAccount(
                    workspace_id=workspace_id,
                    platform="sandbox",
                    external_id=DEV_HANDLE,
                    handle=DEV_HANDLE,
                    display_name="Sandbox (dev)",
                )
                session.add(account)
                await session.flush()
            seeded = {"workspace_id": str(workspace_id), "account_id": str(account.id)}
            if password is not None:
                email = email.lower()
                password_hash = await hasher.hash(password)
                user = await get_user_by_email(session, email)
                if user is None:
                    user = await add_user(session, email, password_hash)
                # The password given wins, so the one make run prints always works.
                await set_password(session, user, password_hash, verified_at=clock.now())
                if not await is_member(session, workspace_id, user.id):
                    await add_membership(session, workspace_id, user.id, Role.OWNER)
                seeded["email"] = email
            return seeded
    finally:
        hasher.close()
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-key", required=True)
    parser.add_argument("--email", default=DEMO_EMAIL, help="The demo user's email.")
    parser.add_argument(
        "--password", help="Create (or reset) the demo user, owner of the dev workspace."
    )
    args = parser.parse_args()
    print(json.dumps(asyncio.run(seed(args.api_key, args.email, args.password))))  # noqa: T201

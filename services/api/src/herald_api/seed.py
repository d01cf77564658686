"""``herald-seed-dev``: the dev workspace, its API key and a sandbox account, idempotently."""

from __future__ import annotations

import argparse
import asyncio
import json

from sqlalchemy import select

from herald_common.db.engine import create_engine, create_session_factory
from herald_common.db.models import SocialAccount
from herald_common.db.repositories.workspaces import add_api_key, create_workspace, find_key
from herald_common.settings import get_settings

DEV_HANDLE = "herald-dev"


async def seed(api_key: str) -> dict[str, str]:
    engine = create_engine(get_settings())
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
            return {"workspace_id": str(workspace_id), "account_id": str(account.id)}
    finally:
        await engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--api-key", required=True)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(seed(args.api_key))))  # noqa: T201

"""Helpers for the AI assistant's tests: an API served with settings of the test's own, extra
accounts on other platforms, and reading a server-sent event stream."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.mail import Outbox
from herald_api.main import create_app
from herald_common.db.models import SocialAccount
from herald_common.settings import Settings
from tests.conftest import free_port


@asynccontextmanager
async def serve_api(settings: Settings) -> AsyncIterator[str]:
    """Another API app (its own clients, the same Postgres and Redis) over real HTTP."""
    app = create_app(settings, mailer=Outbox())
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def add_account(
    sessions: async_sessionmaker[AsyncSession], workspace_id: uuid.UUID, platform: str
) -> uuid.UUID:
    async with sessions.begin() as session:
        account = SocialAccount(
            workspace_id=workspace_id,
            platform=platform,
            external_id=f"{platform}-{uuid.uuid4().hex[:8]}",
            handle=f"{platform}-handle",
        )
        session.add(account)
        await session.flush()
        return account.id


async def read_events(response: httpx.Response) -> list[tuple[str, Any]]:
    """The ``(event, data)`` pairs of a text/event-stream answer, data read as JSON."""
    events: list[tuple[str, Any]] = []
    name, data = "message", list[str]()
    async for line in response.aiter_lines():
        if line.startswith(":"):
            continue  # a keep-alive comment
        if not line:
            if data:
                events.append((name, json.loads("\n".join(data))))
            name, data = "message", []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())
    return events

"""Shared fixtures: real Postgres and real Redis, found through HERALD_* URLs (``make test``
sets them, starting embedded servers when none answer) or the machine's local defaults.

The session gets a database of its own, built by the Alembic migrations; every test starts
from empty tables and an empty Redis database.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest
import uvicorn
from cryptography.fernet import Fernet
from fastapi import FastAPI
from redis.asyncio import Redis
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_api.mail import Outbox
from herald_common import clock
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.db.migrate import upgrade
from herald_common.db.models import SocialAccount
from herald_common.db.repositories.workspaces import add_api_key, create_workspace
from herald_common.settings import Settings
from tests.fakes.openai import API_KEY as OPENAI_TEST_KEY
from tests.fakes.openai import FakeOpenAI

# The test environment refuses the published development keys, as production does, so each
# run makes its own; spawned services inherit them (tests/services.py passes os.environ on).
os.environ.setdefault("HERALD_ENCRYPTION_KEYS", Fernet.generate_key().decode())
os.environ.setdefault("HERALD_JWT_SIGNING_KEY", secrets.token_urlsafe(48))

# A Redis database of its own so tests never touch data a developer keeps in database 0;
# HERALD_TEST_REDIS_DB picks another, so two test runs can share one Redis server.
TEST_REDIS_DB = int(os.environ.get("HERALD_TEST_REDIS_DB", "9"))
DEFAULT_DATABASE_URL = "postgresql+asyncpg://postgres@127.0.0.1:5432/herald"
TABLES = "workspaces, users, sandbox_publications, mastodon_apps"  # the rest cascades


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def redis_url() -> str:
    base = os.environ.get("HERALD_REDIS_URL", "redis://127.0.0.1:6379/0")
    return base.rsplit("/", 1)[0] + f"/{TEST_REDIS_DB}"


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this test session, migrated to head."""
    server = make_url(os.environ.get("HERALD_DATABASE_URL", DEFAULT_DATABASE_URL))
    name = f"herald_test_{os.getpid()}"
    admin = server.set(database="postgres")
    asyncio.run(_admin(admin.render_as_string(False), f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(False)
    upgrade(url)
    yield url
    asyncio.run(_admin(admin.render_as_string(False), f'DROP DATABASE "{name}" WITH (FORCE)'))


async def _admin(url: str, statement: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    engine = create_async_engine(url, isolation_level="AUTOCOMMIT")
    async with engine.connect() as connection:
        await connection.execute(text(statement))
    await engine.dispose()


@pytest.fixture(scope="session")
def fake_openai_server() -> Iterator[FakeOpenAI]:
    """One fake OpenAI-compatible server for the session; every test app's AI talks to it."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def fake_openai(fake_openai_server: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """The fake, with no requests recorded and nothing scripted."""
    fake_openai_server.reset()
    yield fake_openai_server
    fake_openai_server.reset()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str, fake_openai_server: FakeOpenAI) -> Settings:
    return Settings(
        environment="test",
        database_url=database_url,
        redis_url=redis_url,
        log_format="console",
        log_level="WARNING",
        scheduler_interval_seconds=0.2,
        publisher_poll_delay_seconds=0.01,
        # Cheap Argon2 and loose sign-in throttles: tests sign many people in from one IP.
        # tests/api/test_abuse.py runs its own app with tight limits.
        password_hash_time_cost=1,
        password_hash_memory_kib=1024,
        login_per_ip=10_000,
        signup_per_ip=10_000,
        # The AI assistant talks to the local fake; retries do not wait.
        openai_api_key=OPENAI_TEST_KEY,
        openai_base_url=fake_openai_server.base_url,
        openai_retry_backoff_seconds=0,
        openai_timeout_seconds=5,
    )


@pytest.fixture(scope="session")
def base_settings(settings: Settings) -> Settings:
    return settings


@pytest.fixture(scope="session")
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(settings)
    yield engine
    await engine.dispose()


@pytest.fixture(scope="session")
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_session_factory(engine)


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
async def db(engine: AsyncEngine) -> None:
    """Empty tables before the test (the services under test commit for real)."""
    async with engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {TABLES} CASCADE"))


@pytest.fixture(autouse=True)
def _reset_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


@dataclass(frozen=True, slots=True)
class Tenant:
    workspace_id: uuid.UUID
    api_key: str
    account_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}


async def make_tenant(sessions: async_sessionmaker[AsyncSession], name: str) -> Tenant:
    async with sessions.begin() as session:
        workspace = await create_workspace(session, name)
        key = await add_api_key(session, workspace.id, "test key")
        account = SocialAccount(
            workspace_id=workspace.id,
            platform="sandbox",
            external_id=f"{name}-sandbox",
            handle=f"{name}-sandbox",
        )
        session.add(account)
        await session.flush()
        return Tenant(workspace.id, key.key, account.id)


@pytest.fixture
async def tenant(db: None, sessions: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessions, "acme")


@pytest.fixture
async def other_tenant(db: None, sessions: async_sessionmaker[AsyncSession]) -> Tenant:
    return await make_tenant(sessions, "globex")


@pytest.fixture(scope="session")
def outbox() -> Outbox:
    """Every mail the in-process API sends (tests pick theirs by address)."""
    return Outbox()


@pytest.fixture(scope="session")
def api_app(settings: Settings, outbox: Outbox) -> FastAPI:
    from herald_api.main import create_app

    return create_app(settings, mailer=outbox)


@pytest.fixture(scope="session")
async def api_url(api_app: FastAPI) -> AsyncIterator[str]:
    """The real API over real HTTP, served by uvicorn inside the test process."""
    port = free_port()
    # As herald-api serves it: forwarded headers are the app's to judge (HERALD_TRUSTED_PROXIES).
    config = uvicorn.Config(
        api_app, host="127.0.0.1", port=port, log_config=None, proxy_headers=False
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


@pytest.fixture
async def client(api_url: str, tenant: Tenant) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, headers=tenant.headers) as http:
        yield http

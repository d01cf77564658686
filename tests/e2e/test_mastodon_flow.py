"""A post to a Mastodon account goes through the whole pipeline to a fake Mastodon server over
real HTTP, with the account's token encrypted at rest, and stays single when the answer is lost."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.crypto import TokenCipher
from herald_common.db.models import PostTarget, SocialAccount
from herald_common.settings import Settings
from tests.conftest import Tenant
from tests.fakes.mastodon import FakeMastodon
from tests.services import wait_for

TOKEN = "mastodon-user-token"


@pytest.fixture
def fake_mastodon() -> Iterator[FakeMastodon]:
    with FakeMastodon(tokens={TOKEN: "alice"}, domain="mastodon.test") as fake:
        yield fake


@pytest.fixture
async def mastodon_account(
    tenant: Tenant,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    fake_mastodon: FakeMastodon,
) -> uuid.UUID:
    async with sessions.begin() as session:
        account = SocialAccount(
            workspace_id=tenant.workspace_id,
            platform="mastodon",
            external_id=fake_mastodon.account_for(TOKEN).id,
            handle="alice@mastodon.test",
            instance_url=fake_mastodon.base_url,
            access_token_enc=TokenCipher.from_settings(settings).encrypt(TOKEN),
        )
        session.add(account)
        await session.flush()
        return account.id


async def schedule_and_wait(
    client: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], account: uuid.UUID
) -> PostTarget:
    at = clock.now() + timedelta(seconds=1)
    response = await client.post(
        "/v1/posts",
        json={
            "content": "Hello fediverse https://example.com/a/very/long/path/" + "x" * 480,
            "scheduled_at": at.isoformat(),
            "targets": [{"account_id": str(account)}],
        },
    )
    assert response.status_code == 201, response.text
    target_id = uuid.UUID(response.json()["targets"][0]["id"])

    async def finished() -> bool:
        async with sessions() as session:
            target = await session.get(PostTarget, target_id)
            return target is not None and target.status not in {"pending", "enqueued", "publishing"}

    await wait_for(finished, timeout=20)
    async with sessions() as session:
        target = await session.scalar(select(PostTarget).where(PostTarget.id == target_id))
        assert target is not None
        return target


async def test_mastodon_post_is_published_with_the_token_and_key(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    fake_mastodon: FakeMastodon,
    mastodon_account: uuid.UUID,
    pipeline: None,
) -> None:
    target = await schedule_and_wait(client, sessions, mastodon_account)
    [status] = fake_mastodon.statuses
    assert target.status == "published"
    assert target.remote_id == status.id
    assert target.remote_url == f"https://mastodon.test/@alice/{status.id}"
    assert status.idempotency_key == f"herald-{target.id}"
    async with sessions() as session:
        account = await session.get(SocialAccount, mastodon_account)
    assert account is not None and account.access_token_enc is not None
    assert TOKEN.encode() not in account.access_token_enc


async def test_a_content_warning_and_visibility_reach_mastodon(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    fake_mastodon: FakeMastodon,
    mastodon_account: uuid.UUID,
    pipeline: None,
) -> None:
    at = clock.now() + timedelta(seconds=1)
    response = await client.post(
        "/v1/posts",
        json={
            "content": "The ending, explained",
            "scheduled_at": at.isoformat(),
            "targets": [
                {
                    "account_id": str(mastodon_account),
                    "content_warning": "Spoilers for the finale",
                    "visibility": "unlisted",
                }
            ],
        },
    )
    assert response.status_code == 201, response.text

    async def sent() -> bool:
        return len(fake_mastodon.statuses) == 1

    await wait_for(sent, timeout=20)
    [status] = fake_mastodon.statuses
    assert (status.spoiler_text, status.visibility) == ("Spoilers for the finale", "unlisted")


async def test_lost_answer_is_reconciled_without_a_second_status(
    client: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    fake_mastodon: FakeMastodon,
    mastodon_account: uuid.UUID,
    pipeline: None,
) -> None:
    fake_mastodon.drop_next(1)
    target = await schedule_and_wait(client, sessions, mastodon_account)
    [status] = fake_mastodon.statuses
    assert target.status == "published"
    assert target.remote_id == status.id
    posts = [r for r in fake_mastodon.requests if r.method == "POST"]
    assert [r.status_code for r in posts] == [None, 200]
    assert {r.idempotency_key for r in posts} == {f"herald-{target.id}"}


async def test_an_account_connected_through_oauth_publishes_until_it_is_disconnected(
    client: httpx.AsyncClient,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    fake_mastodon: FakeMastodon,
    pipeline: None,
) -> None:
    started = await client.post(
        "/v1/accounts/connect/mastodon", json={"instance_url": fake_mastodon.base_url}
    )
    assert started.status_code == 200, started.text
    back = await fake_mastodon.oauth.authorize(started.json()["authorization_url"], "bob")
    connected = await client.get("/v1/accounts/callback/mastodon", params=back)
    assert connected.status_code == 200, connected.text
    account_id = uuid.UUID(connected.json()["id"])

    target = await schedule_and_wait(client, sessions, account_id)
    [issued] = fake_mastodon.oauth.tokens
    [status] = fake_mastodon.statuses
    assert target.status == "published"
    assert target.remote_url == f"https://mastodon.test/@bob/{status.id}"
    assert status.account_id == fake_mastodon.account_for(issued.token).id

    gone = await client.delete(f"/v1/accounts/{account_id}")
    assert gone.status_code == 200, gone.text
    assert fake_mastodon.oauth.is_revoked(issued.token)

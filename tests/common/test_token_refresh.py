"""Token refresh before publishing, against a real authorization server that rotates and
really revokes refresh tokens (tests/fakes/oauth_server.py)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import httpx
import pytest
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.accounts import oauth
from herald_common.accounts.base import Connection
from herald_common.accounts.refresh import TokenRefresher
from herald_common.accounts.store import save_connection
from herald_common.accounts.x import XOAuth
from herald_common.crypto import TokenCipher
from herald_common.db.models import SocialAccount
from herald_common.platforms.errors import AuthExpired
from herald_common.settings import Settings
from tests.conftest import Tenant
from tests.fakes.oauth_server import FakeOAuthServer

REDIRECT = "http://herald.test/v1/accounts/callback/x"


@pytest.fixture
def server() -> Iterator[FakeOAuthServer]:
    with FakeOAuthServer(expires_in=3600) as running:
        running.register(REDIRECT, "tweet.read tweet.write users.read offline.access")
        yield running


@pytest.fixture
def x_settings(settings: Settings, server: FakeOAuthServer) -> Settings:
    return settings.model_copy(
        update={"public_url": "http://herald.test", **server.settings_for("x")}
    )


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def connected_account(
    settings: Settings,
    server: FakeOAuthServer,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    tenant: Tenant,
) -> uuid.UUID:
    """An X account connected through the real flow: authorize, exchange, save."""
    client = XOAuth(settings, http).client()
    assert client is not None
    state, verifier = oauth.new_state(), oauth.new_code_verifier()
    back = await server.authorize(oauth.authorization_url(client, REDIRECT, state, verifier))
    assert back["state"] == state
    tokens = await oauth.exchange_code(http, client, back["code"], verifier, REDIRECT, clock.now())
    async with sessions.begin() as session:
        saved = await save_connection(
            session,
            TokenCipher.from_settings(settings),
            tenant.workspace_id,
            Connection(
                "x",
                server.user,
                server.username,
                None,
                tokens.access_token,
                tokens.refresh_token,
                tokens.expires_at,
                tokens.scopes,
            ),
            clock.now(),
        )
        return saved.account.id


def refresher(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    http: httpx.AsyncClient,
) -> TokenRefresher:
    return TokenRefresher(settings, sessions, redis, http)


async def test_a_token_is_refreshed_only_within_five_minutes_of_expiry(
    x_settings: Settings,
    server: FakeOAuthServer,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    tenant: Tenant,
) -> None:
    account_id = await connected_account(x_settings, server, http, sessions, tenant)
    tokens = refresher(x_settings, sessions, redis, http)
    [first] = server._state.tokens

    fresh = await tokens.ensure_fresh(account_id)
    assert not fresh.refreshed
    assert fresh.access_token == first.access_token

    clock.advance(timedelta(seconds=3600 - 299))  # expires in 4 min 59 s
    fresh = await tokens.ensure_fresh(account_id)
    assert fresh.refreshed
    assert fresh.access_token != first.access_token
    assert first.refresh_token and server.refresh_token_revoked(first.refresh_token)
    assert [r.grant_type for r in server.token_requests] == ["authorization_code", "refresh_token"]

    # The rotated refresh token was stored (encrypted): it works for the next refresh.
    cipher = TokenCipher.from_settings(x_settings)
    async with sessions() as session:
        account = await session.get(SocialAccount, account_id)
        assert account is not None and account.refresh_token_enc is not None
        assert cipher.decrypt(account.refresh_token_enc) == server._state.tokens[-1].refresh_token
        assert account.token_expires_at is not None
        assert account.token_expires_at > clock.now() + timedelta(minutes=50)
    # And the new access token is a real one.
    me = await http.get(
        f"{server.base_url}/2/users/me", headers={"Authorization": f"Bearer {fresh.access_token}"}
    )
    assert me.status_code == 200


async def test_two_processes_refreshing_at_once_exchange_the_token_once(
    x_settings: Settings,
    server: FakeOAuthServer,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    tenant: Tenant,
) -> None:
    account_id = await connected_account(x_settings, server, http, sessions, tenant)
    clock.advance(timedelta(seconds=3600 - 60))
    # Two refreshers, as two pods would have, with their own HTTP clients.
    async with httpx.AsyncClient() as other_http:
        pod_a = refresher(x_settings, sessions, redis, http)
        pod_b = refresher(x_settings, sessions, redis, other_http)
        a, b = await asyncio.gather(pod_a.ensure_fresh(account_id), pod_b.ensure_fresh(account_id))
    assert a.access_token == b.access_token
    assert sorted([a.refreshed, b.refreshed]) == [False, True]
    refreshes = [r for r in server.token_requests if r.grant_type == "refresh_token"]
    assert [r.status for r in refreshes] == [200]


async def test_a_revoked_refresh_token_marks_the_account_requires_reauth(
    x_settings: Settings,
    server: FakeOAuthServer,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    tenant: Tenant,
) -> None:
    account_id = await connected_account(x_settings, server, http, sessions, tenant)
    server.revoke_all()
    clock.advance(timedelta(hours=1))
    tokens = refresher(x_settings, sessions, redis, http)
    with pytest.raises(AuthExpired):
        await tokens.access_token(account_id)
    assert [(r.grant_type, r.status) for r in server.token_requests][-1] == ("refresh_token", 400)
    async with sessions() as session:
        account = await session.get(SocialAccount, account_id)
        assert account is not None and account.status == "requires_reauth"
    # Later publishes do not hammer the platform with the dead token.
    with pytest.raises(AuthExpired):
        await tokens.access_token(account_id)
    assert len(server.token_requests) == 2


async def test_token_for_reads_nothing_until_the_token_is_due(
    x_settings: Settings,
    server: FakeOAuthServer,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    tenant: Tenant,
) -> None:
    account_id = await connected_account(x_settings, server, http, sessions, tenant)
    async with sessions() as session:
        account = await session.get(SocialAccount, account_id)
        assert account is not None
    tokens = refresher(x_settings, sessions, redis, http)
    args = (account_id, "x", account.access_token_enc, account.token_expires_at)
    [first] = server._state.tokens
    assert await tokens.token_for(*args) == first.access_token
    assert len(server.token_requests) == 1
    clock.advance(timedelta(minutes=58))
    refreshed = await tokens.token_for(*args)
    assert refreshed != first.access_token
    assert [r.grant_type for r in server.token_requests] == ["authorization_code", "refresh_token"]
    # A caller holding the stale row (another job claimed before the refresh) gets the new
    # token from Postgres, without refreshing again.
    assert await tokens.token_for(*args) == refreshed
    assert len(server.token_requests) == 2


async def test_each_stored_token_is_decrypted_once_per_process(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    http: httpx.AsyncClient,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cipher = TokenCipher.from_settings(settings)
    decrypted: list[bytes] = []
    real_decrypt = TokenCipher.decrypt

    def counting(self: TokenCipher, token: bytes) -> str:
        decrypted.append(token)
        return real_decrypt(self, token)

    monkeypatch.setattr(TokenCipher, "decrypt", counting)
    tokens = refresher(settings, sessions, redis, http)
    account_id = uuid.uuid4()
    old, new = cipher.encrypt("old-token"), cipher.encrypt("new-token")
    for _ in range(3):  # ten posts of one account in a spike: one decryption
        assert await tokens.token_for(account_id, "mastodon", old, None) == "old-token"
    assert decrypted == [old]
    # A refreshed (or re-encrypted) token is a new ciphertext: decrypted, never the old answer.
    assert await tokens.token_for(account_id, "mastodon", new, None) == "new-token"
    assert decrypted == [old, new]
    # Damaged ciphertext still holds the account, every time it is met (failures are not kept).
    for _ in range(2):
        with pytest.raises(AuthExpired, match="cannot be decrypted"):
            await tokens.token_for(account_id, "mastodon", b"gAAAAA-damaged", None)
    assert decrypted[2:] == [b"gAAAAA-damaged"] * 2


async def test_the_publisher_refreshes_an_expiring_token_before_it_publishes(
    x_settings: Settings,
    server: FakeOAuthServer,
    http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
    tenant: Tenant,
) -> None:
    import socket

    from herald_common.db.models import Post, PostTarget
    from herald_common.platforms.base import Published
    from herald_publisher.publish import PublisherDeps, publish_target
    from tests.publisher.test_publish import UnlimitedPlatform

    account_id = await connected_account(x_settings, server, http, sessions, tenant)
    [first] = server._state.tokens
    clock.advance(timedelta(seconds=3600 - 120))  # two minutes left on the token
    async with sessions.begin() as session:
        post = Post(
            workspace_id=tenant.workspace_id, content="hi", status="scheduled",
            scheduled_at=clock.now(),
        )  # fmt: skip
        session.add(post)
        await session.flush()
        target = PostTarget(
            workspace_id=tenant.workspace_id, post_id=post.id, account_id=account_id,
            platform="x", scheduled_at=clock.now(), status="enqueued",
        )  # fmt: skip
        session.add(target)
    platform = UnlimitedPlatform(x_settings, [lambda: Published("1", None)], lambda: None)
    deps = PublisherDeps(
        settings=x_settings,
        sessions=sessions,
        redis=redis,
        platforms={"x": platform},
        tokens=refresher(x_settings, sessions, redis, http),
        worker=socket.gethostname(),
    )
    assert await publish_target(deps, target.id, 1) == "published"
    [request] = platform.calls
    assert request.account.access_token == server._state.tokens[-1].access_token
    assert request.account.access_token != first.access_token

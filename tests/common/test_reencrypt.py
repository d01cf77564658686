"""Key rotation: stored tokens move to the newest key, so the old one can be removed."""

from __future__ import annotations

from cryptography.fernet import Fernet
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.crypto import TokenCipher
from herald_common.db.models import MastodonApp, SocialAccount
from herald_common.db.reencrypt import reencrypt_tokens
from herald_common.settings import Settings
from tests.conftest import Tenant


async def test_tokens_are_rewritten_under_the_newest_key_once(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], tenant: Tenant
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with sessions.begin() as session:
        for i in range(3):
            session.add(
                SocialAccount(
                    workspace_id=tenant.workspace_id,
                    platform="mastodon",
                    external_id=f"rotated-{i}",
                    handle=f"rotated-{i}",
                    access_token_enc=TokenCipher([old]).encrypt(f"access-{i}"),
                    # One account was refreshed after the new key went live.
                    refresh_token_enc=TokenCipher([new if i == 0 else old]).encrypt(f"refresh-{i}"),
                )
            )
    rotating = settings.model_copy(update={"encryption_keys": [SecretStr(new), SecretStr(old)]})

    assert await reencrypt_tokens(sessions, rotating, batch_size=2) == 5
    assert await reencrypt_tokens(sessions, rotating, batch_size=2) == 0

    new_only = TokenCipher([new])
    async with sessions() as session:
        accounts = (
            await session.scalars(
                select(SocialAccount)
                .where(SocialAccount.handle.startswith("rotated-"))
                .order_by(SocialAccount.handle)
            )
        ).all()
    assert [
        (new_only.decrypt(a.access_token_enc or b""), new_only.decrypt(a.refresh_token_enc or b""))
        for a in accounts
    ] == [(f"access-{i}", f"refresh-{i}") for i in range(3)]


async def test_mastodon_client_secrets_move_to_the_newest_key_too(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], db: None
) -> None:
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    async with sessions.begin() as session:
        session.add(
            MastodonApp(
                instance_url="https://mastodon.example",
                client_id="client",
                client_secret_enc=TokenCipher([old]).encrypt("client-secret"),
                redirect_uri="https://herald.example/v1/accounts/callback/mastodon",
                scopes=["read:accounts"],
            )
        )
    rotating = settings.model_copy(update={"encryption_keys": [SecretStr(new), SecretStr(old)]})

    assert await reencrypt_tokens(sessions, rotating) == 1
    assert await reencrypt_tokens(sessions, rotating) == 0
    async with sessions() as session:
        app = await session.scalar(select(MastodonApp))
    assert app is not None
    assert TokenCipher([new]).decrypt(app.client_secret_enc) == "client-secret"

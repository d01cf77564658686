"""``herald-reencrypt-tokens``: re-encrypt stored platform tokens under the newest key.

Step two of a key rotation (docs/runbook.md): once every process runs with the new key first
in HERALD_ENCRYPTION_KEYS, this rewrites every token the newest key alone cannot read, so the
old key can then be removed. Safe to run while Herald runs and to run again: each row is
rewritten only if its ciphertext is still the one that was read, so a token refreshed in the
meantime (already under the new key) is never overwritten with an older one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid

from cryptography.fernet import InvalidToken
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.crypto import TokenCipher
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.db.models import MastodonApp, SocialAccount
from herald_common.settings import Settings, get_settings

BATCH_SIZE = 500
# Every encrypted column: account tokens, and Herald's client secret on each Mastodon instance.
ENCRYPTED_COLUMNS: tuple[tuple[type[SocialAccount] | type[MastodonApp], tuple[str, ...]], ...] = (
    (SocialAccount, ("access_token_enc", "refresh_token_enc")),
    (MastodonApp, ("client_secret_enc",)),
)


def readable_by(cipher: TokenCipher, token: bytes) -> bool:
    try:
        cipher.decrypt(token)
    except InvalidToken:
        return False
    return True


async def reencrypt_tokens(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, batch_size: int = BATCH_SIZE
) -> int:
    """Rewrite every stored secret not readable by the newest key alone; returns how many."""
    keys = [key.get_secret_value() for key in settings.encryption_keys]
    cipher, newest = TokenCipher(keys), TokenCipher(keys[:1])
    rewritten = 0
    for model, columns in ENCRYPTED_COLUMNS:
        rewritten += await _reencrypt_table(sessions, model, columns, cipher, newest, batch_size)
    return rewritten


async def _reencrypt_table(
    sessions: async_sessionmaker[AsyncSession],
    model: type[SocialAccount] | type[MastodonApp],
    columns: tuple[str, ...],
    cipher: TokenCipher,
    newest: TokenCipher,
    batch_size: int,
) -> int:
    rewritten = 0
    after = uuid.UUID(int=0)
    while True:
        async with sessions.begin() as session:
            rows = (
                await session.execute(
                    select(model.id, *(getattr(model, c) for c in columns))
                    .where(model.id > after)
                    .order_by(model.id)
                    .limit(batch_size)
                )
            ).all()
            for row_id, *tokens in rows:
                for column, token in zip(columns, tokens, strict=True):
                    if token is None or readable_by(newest, token):
                        continue
                    changed = await session.execute(
                        update(model)
                        .where(model.id == row_id, getattr(model, column) == token)
                        .values({column: cipher.rotate(token)})
                        .returning(model.id)
                    )
                    rewritten += changed.scalar_one_or_none() is not None
        if len(rows) < batch_size:
            return rewritten
        after = rows[-1][0]


async def _run(settings: Settings) -> int:
    engine = create_engine(settings)
    try:
        return await reencrypt_tokens(create_session_factory(engine), settings)
    finally:
        await engine.dispose()


def main() -> None:
    argparse.ArgumentParser(
        prog="herald-reencrypt-tokens",
        description="Re-encrypt stored platform tokens under the first HERALD_ENCRYPTION_KEYS key.",
    ).parse_args()
    rewritten = asyncio.run(_run(get_settings()))
    print(json.dumps({"rewritten": rewritten}))  # noqa: T201  # the command's output

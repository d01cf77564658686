"""Refreshing OAuth access tokens before they expire, once across every process.

The publisher calls :meth:`TokenRefresher.access_token` before publishing. A token that
expires within ``HERALD_TOKEN_REFRESH_MARGIN_SECONDS`` (5 minutes) is refreshed under a Redis
lock per account (redis-py ``Lock``), so two pods never spend the same refresh token: the
second waits, then finds the fresh token in Postgres. Platforms rotate refresh tokens (X
gives a new one with every refresh and revokes the old), so the new tokens are committed
*before* the lock is released; a crash between the platform's answer and the commit is the
one window that can lose a rotated token, and then the account asks to be reconnected.

A refresh the platform refuses (``invalid_grant``: revoked, expired, already used) marks the
account ``requires_reauth`` and raises :class:`AuthExpired`, which the publisher already
handles by holding the account's posts until it is reconnected. A platform that cannot be
reached raises :class:`Transient` (retried like any other transient failure).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import httpx
from cryptography.fernet import InvalidToken
from redis.asyncio import Redis
from redis.exceptions import LockError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.accounts.base import AppOAuthFlow
from herald_common.accounts.errors import OAuthError, PlatformUnavailable
from herald_common.accounts.oauth import OAuthClient
from herald_common.accounts.registry import app_flow
from herald_common.crypto import TokenCipher
from herald_common.db.models import SocialAccount
from herald_common.logging import get_logger
from herald_common.platforms.errors import AuthExpired, Transient
from herald_common.settings import Settings
from herald_common.statuses import AccountStatus

log = get_logger(__name__)
LOCK_KEY = "herald:token-refresh:{account_id}"
# The lock outlives any refresh (HTTP timeout plus a commit); a waiter gives up a little later.
LOCK_TIMEOUT_SECONDS = 60.0
# Decrypted tokens kept per process, keyed by their ciphertext (a spike posts for each account
# many times; Fernet's HMAC + AES cost ~7-10 µs per decryption). A refreshed or
# re-encrypted token has a new ciphertext, hence a new entry; a process holds the keys that
# decrypt every token anyway, so keeping a few thousand plaintexts adds no exposure.
PLAINTEXT_CACHE_SIZE = 4096


@dataclass(frozen=True, slots=True)
class FreshToken:
    access_token: str | None
    refreshed: bool


class TokenRefresher:
    """One per process: ``await refresher.access_token(account_id)``."""

    def __init__(
        self,
        settings: Settings,
        sessions: async_sessionmaker[AsyncSession],
        redis: Redis,
        http: httpx.AsyncClient,
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.redis = redis
        self.http = http
        self.cipher = TokenCipher.from_settings(settings)
        self._plaintext = lru_cache(maxsize=PLAINTEXT_CACHE_SIZE)(self.cipher.decrypt)
        self.margin = timedelta(seconds=settings.token_refresh_margin_seconds)
        self.lock_wait = settings.http_timeout_seconds * 2 + 5

    async def access_token(self, account_id: uuid.UUID) -> str | None:
        """The account's access token, refreshed first when it expires within the margin."""
        return (await self.ensure_fresh(account_id)).access_token

    async def token_for(
        self,
        account_id: uuid.UUID,
        platform: str,
        access_token_enc: bytes | None,
        token_expires_at: datetime | None,
    ) -> str | None:
        """The same as :meth:`access_token` for a caller that already read the account (the
        publisher's claim): no query and no lock unless the token is due for a refresh."""
        due = (
            token_expires_at is not None
            and token_expires_at <= clock.now() + self.margin
            and self._flow(platform) is not None
        )
        if not due:
            return self._decrypt(access_token_enc)
        return await self.access_token(account_id)

    async def ensure_fresh(self, account_id: uuid.UUID) -> FreshToken:
        async with self.sessions() as session:
            account = await session.get(SocialAccount, account_id)
            if account is None:
                raise AuthExpired("the account no longer exists")
            if account.status != AccountStatus.ACTIVE.value:
                raise AuthExpired(f"the {account.platform} account is {account.status}; reconnect")
            if not self._due(account):
                return FreshToken(self._decrypt(account.access_token_enc), refreshed=False)
        lock = self.redis.lock(
            LOCK_KEY.format(account_id=account_id),
            timeout=max(LOCK_TIMEOUT_SECONDS, self.lock_wait),
            blocking_timeout=self.lock_wait,
        )
        try:
            acquired = await lock.acquire()
        except LockError as exc:  # pragma: no cover - Redis trouble
            raise Transient(f"the token refresh lock failed: {exc!r}") from exc
        if not acquired:
            raise Transient("another process is still refreshing this account's token")
        try:
            return await self._refresh_locked(account_id)
        finally:
            try:
                await lock.release()
            except LockError:
                # Held past its timeout and taken over: the tokens are committed already.
                log.warning("token refresh lock expired before release", account_id=str(account_id))

    def _due(self, account: SocialAccount) -> bool:
        return (
            account.status == AccountStatus.ACTIVE.value
            and account.refresh_token_enc is not None
            and account.token_expires_at is not None
            and account.token_expires_at <= clock.now() + self.margin
            and self._flow(account.platform) is not None
        )

    def _flow(self, platform: str) -> tuple[AppOAuthFlow, OAuthClient] | None:
        """The platform's OAuth flow and Herald's client there, when its tokens can be
        refreshed (an OAuth platform configured on this Herald)."""
        flow = app_flow(platform, self.settings, self.http)
        client = None if flow is None else flow.client()
        return None if flow is None or client is None else (flow, client)

    def _decrypt(self, value: bytes | None) -> str | None:
        if value is None:
            return None
        try:
            return self._plaintext(value)
        except InvalidToken as exc:
            raise AuthExpired("the stored token cannot be decrypted; reconnect") from exc

    async def _refresh_locked(self, account_id: uuid.UUID) -> FreshToken:
        async with self.sessions() as session:
            account = (
                await session.execute(
                    select(SocialAccount).where(SocialAccount.id == account_id).with_for_update()
                )
            ).scalar_one_or_none()
            if account is None:
                raise AuthExpired("the account no longer exists")
            if account.status != AccountStatus.ACTIVE.value:
                raise AuthExpired(f"the {account.platform} account is {account.status}; reconnect")
            if not self._due(account):  # another process refreshed it while we waited
                return FreshToken(self._decrypt(account.access_token_enc), refreshed=False)
            refreshing = self._flow(account.platform)
            refresh_token = self._decrypt(account.refresh_token_enc)
            assert refreshing is not None
            assert refresh_token is not None
            flow, client = refreshing
            try:
                tokens = await flow.refresh(client, refresh_token, clock.now())
            except PlatformUnavailable as exc:
                raise Transient(f"{account.platform} token refresh: {exc}") from exc
            except OAuthError as exc:
                if not exc.grant_rejected and exc.http_status not in (400, 401):
                    raise Transient(f"{account.platform} token refresh: {exc}") from exc
                account.status = AccountStatus.REQUIRES_REAUTH.value
                await session.commit()
                log.warning(
                    "token refresh refused; account needs reconnecting",
                    account_id=str(account_id),
                    platform=account.platform,
                    error=exc.error,
                )
                raise AuthExpired(
                    f"{account.platform} refused the refresh token ({exc.error}); reconnect",
                    http_status=exc.http_status,
                ) from exc
            account.access_token_enc = self.cipher.encrypt(tokens.access_token)
            if tokens.refresh_token:
                account.refresh_token_enc = self.cipher.encrypt(tokens.refresh_token)
            account.token_expires_at = tokens.expires_at
            account.scopes = list(tokens.scopes)
            await session.commit()  # before the lock is released (see the module docstring)
            log.info("token refreshed", account_id=str(account_id), platform=account.platform)
            return FreshToken(tokens.access_token, refreshed=True)

"""Revoking a disconnected account's tokens where the platform offers it."""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.accounts import mastodon
from herald_api.resources import Resources
from herald_common.accounts import oauth
from herald_common.crypto import TokenCipher
from herald_common.db.models import SocialAccount
from herald_common.logging import get_logger
from herald_common.statuses import AccountStatus

log = get_logger(__name__)


async def revoke(resources: Resources, session: AsyncSession, account: SocialAccount) -> None:
    """Best effort: a platform that cannot be reached, or refuses, does not keep the account
    connected (the failure is logged).

    X revokes through ``POST /2/oauth2/revoke`` (refresh token, then access token). Mastodon
    revokes through ``POST {instance}/oauth/revoke`` with the client id and secret of Herald's
    application on the instance; a pasted token was issued to the person's own application,
    which Mastodon does not let Herald revoke (it answers 403). LinkedIn offers no revocation
    to ordinary apps. Telegram bot tokens and Discord webhooks belong to the person: Herald
    only forgets them."""
    if account.platform == "mastodon":
        await _revoke_mastodon(resources, session, account)
        return
    client = oauth.oauth_client(resources.settings, account.platform)
    if client is None or client.revoke_url is None:
        return
    cipher = TokenCipher.from_settings(resources.settings)
    for hint, encrypted in (
        ("refresh_token", account.refresh_token_enc),
        ("access_token", account.access_token_enc),
    ):
        if encrypted is None:
            continue
        try:
            token = cipher.decrypt(encrypted)
        except InvalidToken:
            continue
        revoked = await oauth.revoke_token(resources.http, client, token, hint)
        log.info("token revoked", account_id=str(account.id), kind=hint, revoked=revoked)


async def _revoke_mastodon(
    resources: Resources, session: AsyncSession, account: SocialAccount
) -> None:
    if account.instance_url is None or account.access_token_enc is None:
        return
    cipher = TokenCipher.from_settings(resources.settings)
    try:
        token = cipher.decrypt(account.access_token_enc)
    except InvalidToken:
        return
    client = await mastodon.stored_client(resources, session, account.instance_url)
    if client is None:
        log.info("mastodon token not revocable (no application)", account_id=str(account.id))
        return
    if await _token_shared(session, cipher, account, token):
        # Mastodon reuses a live token for the same person and application
        # (Doorkeeper's reuse_access_token), so the same Mastodon account connected in another
        # workspace may hold this very token: revoking it would disconnect that one too.
        log.info("mastodon token still used by another connection", account_id=str(account.id))
        return
    revoked = await oauth.revoke_token(resources.http, client, token, "access_token")
    log.info("token revoked", account_id=str(account.id), kind="access_token", revoked=revoked)


async def _token_shared(
    session: AsyncSession, cipher: TokenCipher, account: SocialAccount, token: str
) -> bool:
    """Whether another connected account (any workspace) holds the same token."""
    others = await session.scalars(
        select(SocialAccount.access_token_enc).where(
            SocialAccount.platform == account.platform,
            SocialAccount.external_id == account.external_id,
            SocialAccount.id != account.id,
            SocialAccount.status != AccountStatus.DISCONNECTED.value,
            SocialAccount.access_token_enc.is_not(None),
        )
    )
    for encrypted in others:
        try:
            if encrypted is not None and cipher.decrypt(encrypted) == token:
                return True
        except InvalidToken:
            continue
    return False

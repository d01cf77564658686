"""Revoking a disconnected account's tokens where the platform offers it."""

from __future__ import annotations

from cryptography.fernet import InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.accounts import apps
from herald_api.resources import Resources
from herald_common.accounts.base import OAuthFlow
from herald_common.accounts.oauth import OAuthClient
from herald_common.accounts.registry import APP_FLOWS, INSTANCE_FLOWS
from herald_common.crypto import TokenCipher
from herald_common.db.models import SocialAccount
from herald_common.logging import get_logger
from herald_common.statuses import AccountStatus

log = get_logger(__name__)


async def revoke(resources: Resources, session: AsyncSession, account: SocialAccount) -> None:
    """Best effort: a platform that cannot be reached, or refuses, does not keep the account
    connected (the failure is logged).

    Each token the account holds (refresh token, then access token) is revoked with the
    client that connected it: Herald's configured application (X revokes through
    ``POST /2/oauth2/revoke``), or Herald's application on the account's instance (Mastodon,
    ``POST {instance}/oauth/revoke``). A pasted Mastodon token was issued to the person's own
    application, which Mastodon does not let Herald revoke (it answers 403). LinkedIn offers
    no revocation to ordinary apps. Telegram bot tokens, Discord webhooks and Bluesky app
    passwords belong to the person: Herald only forgets them."""
    revoking = await _revoking_client(resources, session, account)
    if revoking is None:
        return
    flow, client = revoking
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
        if await _token_shared(session, cipher, account, token):
            # Mastodon reuses a live token for the same person and application
            # (Doorkeeper's reuse_access_token), so the same account connected in another
            # workspace may hold this very token: revoking it would disconnect that one too.
            log.info("token still used by another connection", account_id=str(account.id))
            continue
        revoked = await flow.revoke(client, token, hint)
        log.info("token revoked", account_id=str(account.id), kind=hint, revoked=revoked)


async def _revoking_client(
    resources: Resources, session: AsyncSession, account: SocialAccount
) -> tuple[OAuthFlow, OAuthClient] | None:
    """The platform's flow and the client that connected the account, when it can revoke."""
    settings, http = resources.settings, resources.http
    app_flow = APP_FLOWS.get(account.platform)
    instance_flow = INSTANCE_FLOWS.get(account.platform)
    flow: OAuthFlow
    client: OAuthClient | None
    if app_flow is not None:
        configured = app_flow(settings, http)
        flow, client = configured, configured.client()
    elif instance_flow is not None and account.instance_url is not None:
        on_instance = instance_flow(settings, http, account.instance_url)
        flow, client = on_instance, await apps.stored_client(resources, session, on_instance)
        if client is None:
            log.info("token not revocable (no application)", account_id=str(account.id))
    else:
        return None
    if client is None or client.revoke_url is None:
        return None
    return flow, client


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

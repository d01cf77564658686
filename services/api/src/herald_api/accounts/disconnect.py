"""Revoking a disconnected account's tokens where the platform offers it."""

from __future__ import annotations

from cryptography.fernet import InvalidToken

from herald_api.resources import Resources
from herald_common.accounts import oauth
from herald_common.crypto import TokenCipher
from herald_common.db.models import SocialAccount
from herald_common.logging import get_logger

log = get_logger(__name__)


async def revoke(resources: Resources, account: SocialAccount) -> None:
    """Best effort: a platform that cannot be reached does not keep the account connected.

    X revokes through ``POST /2/oauth2/revoke`` (refresh token, then access token). Mastodon's
    ``POST /oauth/revoke`` needs the client id and secret of the application that issued the
    token, which Herald does not have for pasted tokens; LinkedIn offers no revocation to
    ordinary apps. Telegram bot tokens and Discord webhooks belong to the person: Herald only
    forgets them."""
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

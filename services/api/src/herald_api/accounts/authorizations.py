"""Connecting X, LinkedIn and Mastodon accounts: OAuth 2.0 authorization code with PKCE.

``start`` keeps the state, the PKCE verifier, the workspace and the caller (and for Mastodon
the instance) in Redis for ``HERALD_OAUTH_STATE_TTL_SECONDS`` and answers the authorization
URL; ``finish`` (the public callback) takes that record once (GETDEL), exchanges the code,
reads the profile and saves the account with its tokens encrypted.

Mastodon's client is Herald's application on the person's instance (accounts/mastodon.py).
Its tokens do not expire and come without a refresh token (Mastodon's Doorkeeper sets
``access_token_expires_in nil`` and no ``use_refresh_token``), so the account is stored with
no expiry and the token refresher leaves it alone; a revoked token shows up as a 401 when
publishing, which holds the account's posts until it is reconnected.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.accounts import mastodon
from herald_api.accounts.credentials import checked_origin
from herald_api.accounts.schemas import AuthorizationStarted
from herald_api.auth.permissions import Principal
from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_common.accounts import oauth
from herald_common.accounts.store import Connection, Saved, save_connection
from herald_common.crypto import TokenCipher
from herald_common.logging import get_logger

log = get_logger(__name__)
STATE_KEY = "herald:oauth:state:"


def _state_key(state: str) -> str:
    return STATE_KEY + hashlib.sha256(state.encode()).hexdigest()


def client_for(resources: Resources, platform: str) -> oauth.OAuthClient:
    client = oauth.oauth_client(resources.settings, platform)
    if client is None:
        raise ProblemError(
            409,
            "platform-not-configured",
            f"Connecting {platform} accounts is not configured on this Herald "
            f"(HERALD_{platform.upper()}_CLIENT_ID).",
        )
    return client


async def start(
    resources: Resources,
    principal: Principal,
    client: oauth.OAuthClient,
    now: datetime,
    instance: str | None = None,
) -> AuthorizationStarted:
    platform = client.platform
    state = oauth.new_state()
    verifier = oauth.new_code_verifier()
    ttl = resources.settings.oauth_state_ttl_seconds
    record = {
        "platform": platform,
        "workspace_id": str(principal.workspace_id),
        "user_id": str(principal.user_id) if principal.user_id else None,
        "api_key_id": str(principal.api_key_id) if principal.api_key_id else None,
        "code_verifier": verifier,
        "instance": instance,
    }
    await resources.redis.set(_state_key(state), json.dumps(record), ex=ttl)
    redirect = oauth.redirect_uri(resources.settings, platform)
    return AuthorizationStarted(
        authorization_url=oauth.authorization_url(client, redirect, state, verifier),
        state=state,
        expires_at=now + timedelta(seconds=ttl),
    )


async def _client_for_callback(
    resources: Resources, session: AsyncSession, platform: str, instance: str | None
) -> oauth.OAuthClient:
    if platform != "mastodon":
        return client_for(resources, platform)
    if not instance:
        raise _invalid_state()
    # Checked again: the name was public when the connection started, but DNS may have
    # moved it since (the check does not pin the address; see herald_common.caller_urls).
    await checked_origin(resources, "Mastodon instance", instance)
    client = await mastodon.stored_client(resources, session, instance)
    if client is None:
        raise ProblemError(
            400,
            "authorization-failed",
            "Herald has no application on this Mastodon instance any more; connect again.",
        )
    return client


def _invalid_state() -> ProblemError:
    return ProblemError(
        400,
        "invalid-oauth-state",
        "This authorization is unknown, expired or already used; connect the account again.",
    )


async def _take_state(redis: Redis, state: str, platform: str) -> dict[str, str | None]:
    raw = await redis.getdel(_state_key(state))
    if raw is None:
        raise _invalid_state()
    record: dict[str, str | None] = json.loads(raw)
    if record.get("platform") != platform:
        raise _invalid_state()
    return record


async def finish(
    resources: Resources,
    session: AsyncSession,
    platform: str,
    code: str | None,
    state: str | None,
    error: str | None,
    now: datetime,
) -> Saved:
    if not state:
        raise _invalid_state()
    record = await _take_state(resources.redis, state, platform)
    if error or not code:
        raise ProblemError(
            400,
            "authorization-denied",
            f"{platform} did not authorize Herald ({error or 'no code'}); nothing was connected.",
        )
    instance = record.get("instance")
    client = await _client_for_callback(resources, session, platform, instance)
    redirect = oauth.redirect_uri(resources.settings, platform)
    verifier = record["code_verifier"] or ""
    try:
        tokens = await oauth.exchange_code(resources.http, client, code, verifier, redirect, now)
        profile = await oauth.read_profile(
            resources.http, resources.settings, platform, tokens.access_token, instance
        )
    except oauth.OAuthError as exc:
        log.info("oauth exchange refused", platform=platform, error=exc.error)
        raise ProblemError(
            400,
            "authorization-failed",
            f"{platform} refused the authorization ({exc.error}); connect the account again.",
        ) from None
    except oauth.OAuthUnavailable:
        raise ProblemError(
            502, "platform-unavailable", f"{platform} could not be reached; try again."
        ) from None
    saved = await save_connection(
        session,
        TokenCipher.from_settings(resources.settings),
        uuid.UUID(str(record["workspace_id"])),
        Connection(
            platform=platform,
            external_id=profile.external_id,
            handle=profile.handle,
            display_name=profile.display_name,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token,
            expires_at=tokens.expires_at,
            scopes=tokens.scopes,
            instance_url=instance,
        ),
        now,
    )
    await session.commit()
    log.info(
        "account connected",
        platform=platform,
        account_id=str(saved.account.id),
        created=saved.created,
        resumed_targets=saved.resumed_targets,
    )
    return saved

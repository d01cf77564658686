"""Connecting accounts through OAuth 2.0 (authorization code with PKCE): the state between
the start and the platform's callback, and saving what the callback brings.

``start`` keeps the state, the PKCE verifier, the workspace and the caller (and for instance
platforms the instance) in Redis for ``HERALD_OAUTH_STATE_TTL_SECONDS`` and answers the
authorization URL; ``finish`` (the public callback) takes that record once (GETDEL), has the
platform's flow exchange the code and read the profile, and saves the account with its tokens
encrypted. What each platform does at each step is its module's, under
herald_common/accounts/.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.accounts.schemas import AuthorizationStarted
from herald_api.auth.permissions import Principal
from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_common.accounts import oauth
from herald_common.accounts.base import AppOAuthFlow, Connection, OAuthFlow
from herald_common.accounts.errors import OAuthError
from herald_common.accounts.oauth import OAuthClient
from herald_common.accounts.store import Saved, save_connection
from herald_common.crypto import TokenCipher
from herald_common.logging import get_logger
from herald_common.settings import Settings

log = get_logger(__name__)
STATE_KEY = "herald:oauth:state:"


def redirect_uri(settings: Settings, platform: str) -> str:
    """The callback registered with the platform (or with each instance)."""
    return f"{settings.public_url.rstrip('/')}/v1/accounts/callback/{platform}"


def configured_client(flow: AppOAuthFlow) -> OAuthClient:
    client = flow.client()
    if client is None:
        platform = flow.platform
        raise ProblemError(
            409,
            "platform-not-configured",
            f"Connecting {platform} accounts is not configured on this Herald "
            f"(HERALD_{platform.upper()}_CLIENT_ID).",
        )
    return client


def _state_key(state: str) -> str:
    return STATE_KEY + hashlib.sha256(state.encode()).hexdigest()


async def start(
    resources: Resources,
    principal: Principal,
    flow: OAuthFlow,
    client: OAuthClient,
    now: datetime,
    instance: str | None = None,
) -> AuthorizationStarted:
    platform = flow.platform
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
    redirect = redirect_uri(resources.settings, platform)
    return AuthorizationStarted(
        authorization_url=flow.authorization_url(client, redirect, state, verifier),
        state=state,
        expires_at=now + timedelta(seconds=ttl),
    )


def invalid_state() -> ProblemError:
    return ProblemError(
        400,
        "invalid-oauth-state",
        "This authorization is unknown, expired or already used; connect the account again.",
    )


async def take_state(redis: Redis, state: str | None, platform: str) -> dict[str, str | None]:
    """The record ``start`` kept for ``state``, once; refused when it is unknown or was
    started for another platform (either way it is spent)."""
    if not state:
        raise invalid_state()
    raw = await redis.getdel(_state_key(state))
    if raw is None:
        raise invalid_state()
    record: dict[str, str | None] = json.loads(raw)
    if record.get("platform") != platform:
        raise invalid_state()
    return record


async def finish(
    resources: Resources,
    session: AsyncSession,
    flow: OAuthFlow,
    client: OAuthClient,
    record: dict[str, str | None],
    code: str,
    now: datetime,
) -> Saved:
    """Exchange the code the platform brought back, read who it is, save the account."""
    platform = flow.platform
    redirect = redirect_uri(resources.settings, platform)
    verifier = record["code_verifier"] or ""
    try:
        tokens = await flow.exchange_code(client, code, verifier, redirect, now)
        profile = await flow.read_profile(tokens.access_token)
    except OAuthError as exc:
        log.info("oauth exchange refused", platform=platform, error=exc.error)
        raise ProblemError(
            400,
            "authorization-failed",
            f"{platform} refused the authorization ({exc.error}); connect the account again.",
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
            instance_url=record.get("instance"),
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

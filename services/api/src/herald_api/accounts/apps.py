"""Herald's OAuth application on each Mastodon instance.

Mastodon has no central developer portal: every instance is its own authorization server, and
an application is registered on it through ``POST /api/v1/apps`` (client_name, redirect_uris,
scopes, website -> client_id, client_secret). Herald registers the first time someone connects
an account on an instance, keeps the pair in ``mastodon_apps`` (the secret Fernet-encrypted),
and reuses it for every later connection there and for revoking tokens at disconnect.

Registering again for every connection would litter the instance with applications and spend
the instance's unauthenticated API allowance (rack_attack ``throttle_unauthenticated_api``:
300 requests per 5 minutes per IP, which ``POST /api/v1/apps`` falls under). So the
registration runs under a Redis lock per instance, and the row is written with
``INSERT ... ON CONFLICT``: should two processes still register at once (the lock timed out),
one row wins and both use it.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime

import httpx
from redis.exceptions import LockError
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_common import clock
from herald_common.accounts import oauth
from herald_common.crypto import TokenCipher
from herald_common.db.models import MastodonApp
from herald_common.http import TRANSPORT_ERRORS, json_object, retry_after_seconds
from herald_common.logging import get_logger

log = get_logger(__name__)
REGISTRATION_LOCK = "herald:mastodon-app:{digest}"
APPS_PATH = "/api/v1/apps"


@dataclass(frozen=True, slots=True)
class RegisteredApp:
    client_id: str
    client_secret: str
    redirect_uri: str
    scopes: tuple[str, ...]


def _wanted(resources: Resources) -> tuple[str, tuple[str, ...]]:
    return (
        oauth.redirect_uri(resources.settings, "mastodon"),
        tuple(resources.settings.mastodon_scopes),
    )


def _client(instance: str, app: RegisteredApp, scopes: tuple[str, ...]) -> oauth.OAuthClient:
    return oauth.mastodon_client(instance, app.client_id, app.client_secret, scopes)


async def stored_app(
    session: AsyncSession, cipher: TokenCipher, instance: str
) -> RegisteredApp | None:
    row = (
        await session.execute(
            select(
                MastodonApp.client_id,
                MastodonApp.client_secret_enc,
                MastodonApp.redirect_uri,
                MastodonApp.scopes,
            ).where(MastodonApp.instance_url == instance)
        )
    ).one_or_none()
    if row is None:
        return None
    return RegisteredApp(row[0], cipher.decrypt(row[1]), row[2], tuple(row[3]))


async def save_app(
    session: AsyncSession, cipher: TokenCipher, instance: str, app: RegisteredApp
) -> RegisteredApp:
    """Store ``app`` for ``instance`` unless another process stored a registration with the
    same redirect URI and scopes first (then that one wins); returns the one stored. A stale
    registration (other redirect URI or scopes) is replaced. The caller commits."""
    values = {
        "instance_url": instance,
        "client_id": app.client_id,
        "client_secret_enc": cipher.encrypt(app.client_secret),
        "redirect_uri": app.redirect_uri,
        "scopes": list(app.scopes),
    }
    statement = insert(MastodonApp).values(values)
    excluded = statement.excluded
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[MastodonApp.instance_url],
            set_={
                "client_id": excluded.client_id,
                "client_secret_enc": excluded.client_secret_enc,
                "redirect_uri": excluded.redirect_uri,
                "scopes": excluded.scopes,
                "updated_at": func.now(),
            },
            where=or_(
                MastodonApp.redirect_uri != excluded.redirect_uri,
                MastodonApp.scopes != excluded.scopes,
            ),
        )
    )
    stored = await stored_app(session, cipher, instance)
    assert stored is not None  # inserted, updated, or kept: a row exists in any case
    return stored


def _usable(app: RegisteredApp | None, redirect: str, scopes: tuple[str, ...]) -> bool:
    return app is not None and app.redirect_uri == redirect and app.scopes == scopes


async def client_for_connecting(
    resources: Resources, session: AsyncSession, instance: str
) -> oauth.OAuthClient:
    """Herald's client on ``instance``, registered there first if it has none (or one
    registered with another redirect URI or other scopes). Commits the registration."""
    cipher = TokenCipher.from_settings(resources.settings)
    redirect, scopes = _wanted(resources)
    app = await stored_app(session, cipher, instance)
    await session.commit()  # no transaction stays open across the registration request
    if app is not None and _usable(app, redirect, scopes):
        return _client(instance, app, scopes)
    digest = hashlib.sha256(instance.encode()).hexdigest()
    wait = resources.settings.http_timeout_seconds * 2 + 5
    lock = resources.redis.lock(
        REGISTRATION_LOCK.format(digest=digest), timeout=wait, blocking_timeout=wait
    )
    if not await lock.acquire():
        raise ProblemError(
            502, "platform-unavailable", "Herald is still registering on this instance; retry."
        )
    try:
        app = await stored_app(session, cipher, instance)  # registered while we waited?
        await session.commit()
        if app is None or not _usable(app, redirect, scopes):
            registered = await register_app(resources, instance, redirect, scopes)
            app = await save_app(session, cipher, instance, registered)
            await session.commit()
            log.info("mastodon application registered", instance=instance)
    finally:
        try:
            await lock.release()
        except LockError:
            log.warning("mastodon registration lock expired before release", instance=instance)
    return _client(instance, app, scopes)


async def stored_client(
    resources: Resources, session: AsyncSession, instance: str
) -> oauth.OAuthClient | None:
    """The client a connection was started with, or ``None`` if the instance has none."""
    app = await stored_app(session, TokenCipher.from_settings(resources.settings), instance)
    return None if app is None else _client(instance, app, app.scopes)


async def register_app(
    resources: Resources, instance: str, redirect: str, scopes: tuple[str, ...]
) -> RegisteredApp:
    """``POST /api/v1/apps``. Mastodon answers a CredentialApplication (``client_id``,
    ``client_secret``, ...) or 422 ``{"error": "Validation failed: ..."}``; an instance that
    closed registration, or a server that is not Mastodon, answers some other 4xx."""
    settings = resources.settings
    form = {
        "client_name": settings.mastodon_app_name,
        # One URI as a string: arrays are only understood from Mastodon 4.3 on.
        "redirect_uris": redirect,
        "scopes": " ".join(scopes),
    }
    if settings.mastodon_app_website:
        form["website"] = settings.mastodon_app_website
    try:
        response = await resources.http.post(
            instance + APPS_PATH, data=form, headers={"Accept": "application/json"}
        )
    except TRANSPORT_ERRORS:
        raise _unreachable() from None
    body = json_object(response)
    if response.status_code == 429:
        wait = _seconds_until_reset(response)
        headers = {"Retry-After": str(math.ceil(wait))} if wait is not None else None
        raise ProblemError(
            502,
            "platform-unavailable",
            "The Mastodon instance is rate limiting Herald; try again later.",
            headers=headers,
        )
    if response.status_code >= 500:
        raise _unreachable()
    if response.status_code != 200 or not body.get("client_id") or not body.get("client_secret"):
        why = str(body.get("error") or f"HTTP {response.status_code}")
        raise ProblemError(
            422,
            "app-registration-refused",
            f"The Mastodon instance did not let Herald register ({why}). Connect with an "
            "access token instead (instance_url and access_token).",
        )
    return RegisteredApp(str(body["client_id"]), str(body["client_secret"]), redirect, scopes)


def _seconds_until_reset(response: httpx.Response) -> float | None:
    """Mastodon announces its reset as an ISO 8601 time in ``X-RateLimit-Reset``; a proxy in
    front may send ``Retry-After`` instead."""
    now = clock.now()
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            moment = datetime.fromisoformat(reset)
        except ValueError:
            moment = None
        if moment is not None and moment.tzinfo is not None:
            return max(0.0, (moment - now).total_seconds())
    return retry_after_seconds(response.headers.get("Retry-After"), now)


def _unreachable() -> ProblemError:
    return ProblemError(
        502, "platform-unavailable", "The Mastodon instance could not be reached; try again."
    )

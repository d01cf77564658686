"""Herald's OAuth applications on the servers of instance platforms (Mastodon), one per
server, registered the first time someone connects an account there and kept in
``mastodon_apps`` (the secret Fernet-encrypted); reused for every later connection there and
for revoking tokens at disconnect. The registration itself is the platform module's
(herald_common/accounts/mastodon.py).

Registering again for every connection would litter the server with applications and spend
its unauthenticated API allowance. So the registration runs under a Redis lock per server,
and the row is written with ``INSERT ... ON CONFLICT``: should two processes still register
at once (the lock timed out), one row wins and both use it.

The table has no platform column: one instance platform (Mastodon) uses it today; a second
would add one (docs/accounts.md, "Adding a platform").
"""

from __future__ import annotations

import hashlib

from redis.exceptions import LockError
from sqlalchemy import func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api.accounts.authorizations import redirect_uri
from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_common.accounts.base import InstanceOAuthFlow, RegisteredApp
from herald_common.accounts.oauth import OAuthClient
from herald_common.crypto import TokenCipher
from herald_common.db.models import MastodonApp
from herald_common.logging import get_logger

log = get_logger(__name__)
REGISTRATION_LOCK = "herald:{platform}-app:{digest}"


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
    resources: Resources, session: AsyncSession, flow: InstanceOAuthFlow
) -> OAuthClient:
    """Herald's client on the flow's instance, registered there first if it has none (or one
    registered with another redirect URI or other scopes). Commits the registration."""
    cipher = TokenCipher.from_settings(resources.settings)
    instance = flow.instance
    redirect, scopes = redirect_uri(resources.settings, flow.platform), flow.scopes()
    app = await stored_app(session, cipher, instance)
    await session.commit()  # no transaction stays open across the registration request
    if app is not None and _usable(app, redirect, scopes):
        return flow.client(app)
    digest = hashlib.sha256(instance.encode()).hexdigest()
    wait = resources.settings.http_timeout_seconds * 2 + 5
    lock = resources.redis.lock(
        REGISTRATION_LOCK.format(platform=flow.platform, digest=digest),
        timeout=wait,
        blocking_timeout=wait,
    )
    if not await lock.acquire():
        raise ProblemError(
            502, "platform-unavailable", "Herald is still registering on this instance; retry."
        )
    try:
        app = await stored_app(session, cipher, instance)  # registered while we waited?
        await session.commit()
        if app is None or not _usable(app, redirect, scopes):
            registered = await flow.register(redirect, scopes)
            app = await save_app(session, cipher, instance, registered)
            await session.commit()
            log.info("application registered", platform=flow.platform, instance=instance)
    finally:
        try:
            await lock.release()
        except LockError:
            log.warning(
                "registration lock expired before release",
                platform=flow.platform,
                instance=instance,
            )
    return flow.client(app)


async def stored_client(
    resources: Resources, session: AsyncSession, flow: InstanceOAuthFlow
) -> OAuthClient | None:
    """The client a connection was started with, or ``None`` if the instance has none."""
    cipher = TokenCipher.from_settings(resources.settings)
    app = await stored_app(session, cipher, flow.instance)
    return None if app is None else flow.client(app)

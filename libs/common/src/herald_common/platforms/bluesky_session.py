"""Bluesky sessions: one per account and process, logged in rarely, renewed when they expire.

The adapter logs in with ``com.atproto.server.createSession`` once per account (and app
password) and process, keeps the session, renews it with ``refreshSession`` when the access
token expires, and logs in again only when the refresh token no longer works: createSession is
limited to 30 per 5 minutes and 300 per day per account
(docs.bsky.app/docs/advanced-guides/rate-limits), so logging in per post would lock the
account out. Logins are counted here against that limit, and a 429 on a login holds further
logins of the account until the reset the PDS announced.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from herald_common.http import TRANSPORT_ERRORS, json_object
from herald_common.platforms.base import PublishRequest, RateLimit
from herald_common.platforms.bluesky_xrpc import (
    api_base,
    error_text,
    is_error,
    raise_for_error,
    retry_after,
    session_expired,
)
from herald_common.platforms.errors import AuthExpired, RateLimited, Transient
from herald_common.settings import Settings

# docs.bsky.app/docs/advanced-guides/rate-limits: createSession is limited per handle to 30
# per 5 minutes (and 300 per day). Not a publish bucket (a publish normally reuses its
# session): the sessions keep to it themselves.
LOGIN_LIMIT = RateLimit("createSession", capacity=30, per_seconds=5 * 60)

_SessionKey = tuple[UUID, str]


@dataclass(frozen=True, slots=True)
class Session:
    did: str
    access_jwt: str
    refresh_jwt: str


class Sessions:
    """The sessions of every account one adapter serves, and XRPC calls made as them."""

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http
        self._sessions: dict[_SessionKey, Session] = {}
        self._locks: dict[_SessionKey, asyncio.Lock] = {}
        self._logins: dict[_SessionKey, list[float]] = {}
        self._login_blocked_until: dict[_SessionKey, float] = {}

    async def xrpc(
        self,
        request: PublishRequest,
        method: str,
        nsid: str,
        *,
        authenticated: bool = True,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        """One XRPC call; an expired session is renewed once and the call repeated (the PDS
        refused it before doing anything, so repeating it is safe)."""
        url = self._url(request, nsid)
        if not authenticated:
            return await self.http.request(method, url, headers=headers, **kwargs)
        session = await self.session(request)
        response = await self.http.request(
            method, url, headers={**(headers or {}), **_bearer(session)}, **kwargs
        )
        if not session_expired(response):
            return response
        session = await self._renew(request, session)
        return await self.http.request(
            method, url, headers={**(headers or {}), **_bearer(session)}, **kwargs
        )

    async def session(self, request: PublishRequest) -> Session:
        """The account's session, logging in first if this process has none."""
        key = _session_key(request)
        session = self._sessions.get(key)
        if session is not None:
            return session
        async with self._lock(key):
            session = self._sessions.get(key)
            if session is None:
                session = await self._create_session(request)
                self._sessions[key] = session
            return session

    async def _renew(self, request: PublishRequest, stale: Session) -> Session:
        key = _session_key(request)
        async with self._lock(key):
            current = self._sessions.get(key)
            if current is not None and current != stale:
                return current  # another task renewed it meanwhile
            session = await self._refresh_session(request, stale)
            if session is None:
                session = await self._create_session(request)
            self._sessions[key] = session
            return session

    async def _refresh_session(self, request: PublishRequest, stale: Session) -> Session | None:
        try:
            response = await self.http.post(
                self._url(request, "com.atproto.server.refreshSession"),
                headers={"Authorization": f"Bearer {stale.refresh_jwt}"},
            )
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"Bluesky: the session could not be refreshed: {exc!r}") from exc
        if session_expired(response):
            return None  # the refresh token expired or was revoked: log in again
        raise_for_error(response)
        return _parse_session(response)

    async def _create_session(self, request: PublishRequest) -> Session:
        password = request.account.access_token
        if not password:
            raise AuthExpired("Bluesky: the account has no app password; reconnect it")
        key = _session_key(request)
        now = time.monotonic()
        blocked_until = self._login_blocked_until.get(key, 0.0)
        if blocked_until > now:
            raise RateLimited(
                "Bluesky: logging in is rate limited for this account",
                retry_after=blocked_until - now,
            )
        limit = LOGIN_LIMIT
        recent = [t for t in self._logins.get(key, []) if now - t < limit.per_seconds]
        if len(recent) >= limit.capacity:
            raise RateLimited(
                f"Bluesky allows {limit.capacity} logins per {int(limit.per_seconds)} s",
                retry_after=limit.per_seconds - (now - recent[0]),
            )
        self._logins[key] = [*recent, now]
        try:
            response = await self.http.post(
                self._url(request, "com.atproto.server.createSession"),
                json={"identifier": request.account.handle, "password": password},
            )
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"Bluesky could not be reached to log in: {exc!r}") from exc
        if response.status_code == 429:
            self._login_blocked_until[key] = now + retry_after(response)
        if response.status_code in (400, 401) and not is_error(response, "RateLimitExceeded"):
            raise AuthExpired(
                f"Bluesky refused the account's app password: {error_text(response)}",
                http_status=response.status_code,
            )
        raise_for_error(response)
        return _parse_session(response)

    def _url(self, request: PublishRequest, nsid: str) -> str:
        return f"{api_base(self.settings, request.account)}/xrpc/{nsid}"

    def _lock(self, key: _SessionKey) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())


def _session_key(request: PublishRequest) -> _SessionKey:
    # A changed app password must not reuse the old password's session.
    secret = hashlib.sha256((request.account.access_token or "").encode()).hexdigest()
    return (request.account.account_id, secret)


def _bearer(session: Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {session.access_jwt}"}


def _parse_session(response: httpx.Response) -> Session:
    body = json_object(response)
    try:
        return Session(str(body["did"]), str(body["accessJwt"]), str(body["refreshJwt"]))
    except KeyError as exc:
        raise Transient(f"Bluesky answered a login without {exc}") from exc

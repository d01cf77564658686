"""What a Bluesky PDS's XRPC answers mean, in Herald's failure model (DESIGN.md, "Failures").

XRPC errors are ``{"error": name, "message": text}`` (atproto.com/specs/xrpc); rate limits are
announced in the IETF RateLimit headers. Shared by the adapter (bluesky.py) and its sessions
(bluesky_session.py).
"""

from __future__ import annotations

import httpx

from herald_common import clock
from herald_common.http import json_object, retry_after_seconds
from herald_common.platforms.base import AccountCredentials
from herald_common.platforms.errors import AuthExpired, RateLimited, Rejected, Transient
from herald_common.settings import Settings

DEFAULT_RETRY_AFTER_SECONDS = 60.0
MIN_RETRY_AFTER_SECONDS = 1.0
# Session errors that mean "log in again" rather than "the request was wrong".
_EXPIRED = ("ExpiredToken", "InvalidToken", "AuthenticationRequired")


def api_base(settings: Settings, account: AccountCredentials) -> str:
    """The account's PDS: its own ``instance_url``, else ``HERALD_BLUESKY_API_BASE``."""
    return (account.instance_url or settings.bluesky_api_base).rstrip("/")


def is_error(response: httpx.Response, error: str) -> bool:
    return json_object(response).get("error") == error


def session_expired(response: httpx.Response) -> bool:
    # The PDS answers 400 ExpiredToken for an expired access token and 401 for a bad one.
    return response.status_code in (400, 401) and any(is_error(response, e) for e in _EXPIRED)


def raise_for_error(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    error = error_text(response)
    if status == 429:
        raise RateLimited(
            f"Bluesky rate limit: {error}", retry_after=retry_after(response), http_status=status
        )
    if status in (401, 403) or session_expired(response):
        raise AuthExpired(f"Bluesky refused the account ({status}): {error}", http_status=status)
    if status >= 500 or status == 408:
        raise Transient(
            f"Bluesky answered {status}: {error}",
            http_status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), clock.now()),
        )
    # 400 InvalidRequest: the record failed validation (too long, bad facets, ...).
    raise Rejected(f"Bluesky rejected the post ({status}): {error}", http_status=status)


def error_text(response: httpx.Response) -> str:
    """The XRPC error's name and message, or what else the answer says."""
    body = json_object(response)
    name, message = body.get("error"), body.get("message")
    if isinstance(name, str) or isinstance(message, str):
        return ": ".join(str(part) for part in (name, message) if part)
    return response.text.strip()[:200] or response.reason_phrase or str(response.status_code)


def retry_after(response: httpx.Response) -> float:
    """The PDS announces its reset in ``ratelimit-reset`` (epoch seconds, the IETF
    RateLimit header draft); ``Retry-After`` when a proxy answered instead."""
    now = clock.now()
    reset = response.headers.get("ratelimit-reset")
    if reset is not None:
        try:
            return max(float(reset) - now.timestamp(), MIN_RETRY_AFTER_SECONDS)
        except ValueError:
            pass
    wait = retry_after_seconds(response.headers.get("Retry-After"), now)
    return DEFAULT_RETRY_AFTER_SECONDS if wait is None else max(wait, MIN_RETRY_AFTER_SECONDS)

"""Why connecting (or refreshing) an account failed, in terms the API turns into problems
(herald_api/accounts/problems.py) and the token refresher into publishing failures."""

from __future__ import annotations

from collections.abc import Awaitable

import httpx

from herald_common.http import TRANSPORT_ERRORS


class ConnectError(Exception):
    """Connecting an account did not work out; the subclass says why."""


class OAuthError(ConnectError):
    """The platform refused (``error`` is its OAuth error code, e.g. ``invalid_grant``)."""

    def __init__(self, error: str, description: str = "", *, http_status: int | None = None):
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description
        self.http_status = http_status

    @property
    def grant_rejected(self) -> bool:
        """The code or refresh token is no good (expired, used, revoked): a person must act."""
        return self.error in {"invalid_grant", "invalid_token", "unauthorized_client"}


class PlatformUnavailable(ConnectError):
    """The platform could not be reached or answered with a server error: try again later.

    ``detail`` is what the person is told; ``retry_after`` is set when the platform said how
    long to wait."""

    def __init__(
        self,
        platform: str,
        why: str,
        *,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{platform} {why}")
        self.platform = platform
        self.detail = detail or f"{platform} could not be reached; try again."
        self.retry_after = retry_after


class CredentialsRefused(ConnectError):
    """The platform did not accept the credentials a person gave (``why`` says what it said)."""

    def __init__(self, platform: str, why: str) -> None:
        super().__init__(f"{platform} did not accept these credentials: {why}.")
        self.platform = platform
        self.why = why


class AddressRefused(ConnectError):
    """A caller-chosen address (an instance, a PDS) Herald may not fetch."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"The {what} address {reason}.")
        self.what = what
        self.reason = reason


class RegistrationRefused(ConnectError):
    """The platform would not let Herald register its application there."""


async def platform_answer(platform: str, request: Awaitable[httpx.Response]) -> httpx.Response:
    """The platform's answer to ``request``; :class:`PlatformUnavailable` when none came or it
    was a server error (5xx)."""
    try:
        response = await request
    except TRANSPORT_ERRORS as exc:
        raise PlatformUnavailable(platform, f"could not be reached: {exc!r}") from exc
    if response.status_code >= 500:
        raise PlatformUnavailable(platform, f"answered {response.status_code}")
    return response

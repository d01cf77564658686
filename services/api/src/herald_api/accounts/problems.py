"""What a failed connection tells the caller: each :mod:`herald_common.accounts.errors` as
its problem, in one place."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

from herald_api.problems import ProblemError
from herald_common.accounts.errors import (
    AddressRefused,
    ConnectError,
    CredentialsRefused,
    OAuthError,
    PlatformUnavailable,
    RegistrationRefused,
)


def connect_problem(exc: ConnectError) -> ProblemError:
    if isinstance(exc, PlatformUnavailable):
        headers = None
        if exc.retry_after is not None:
            headers = {"Retry-After": str(math.ceil(exc.retry_after))}
        return ProblemError(502, "platform-unavailable", exc.detail, headers=headers)
    if isinstance(exc, CredentialsRefused):
        return ProblemError(422, "credentials-refused", str(exc))
    if isinstance(exc, AddressRefused):
        return ProblemError(422, "url-not-allowed", str(exc))
    if isinstance(exc, RegistrationRefused):
        return ProblemError(422, "app-registration-refused", str(exc))
    assert isinstance(exc, OAuthError), exc  # the one kind left
    return ProblemError(
        400,
        "authorization-failed",
        f"The platform refused the authorization ({exc.error}); connect the account again.",
    )


@contextmanager
def connect_problems() -> Iterator[None]:
    """Raise what the platform modules raise as the API's problems."""
    try:
        yield
    except ConnectError as exc:
        raise connect_problem(exc) from None

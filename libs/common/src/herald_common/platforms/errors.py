"""The failure model every adapter speaks (DESIGN.md, "Failures").

The publisher decides what happens next from the exception's type alone, so an adapter's job is
to map each platform's error shapes onto exactly one of these.
"""

from __future__ import annotations


class PublishError(Exception):
    """Base of every adapter failure. ``kind`` is recorded on the target as ``error_kind``."""

    kind = "error"

    def __init__(self, message: str, *, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class RateLimited(PublishError):
    """The platform (or our own bucket) says wait; retrying later does not use up an attempt."""

    kind = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, http_status: int | None = None) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after = max(0.0, retry_after)


class Transient(PublishError):
    """5xx, timeouts before sending, network errors: safe to retry.

    ``retry_after`` is how long the platform asked to be left alone (a 503's
    ``Retry-After``), when it said; the retry waits at least that long.
    """

    kind = "transient"

    def __init__(
        self, message: str, *, http_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, http_status=http_status)
        self.retry_after = None if retry_after is None else max(0.0, retry_after)


class AuthExpired(PublishError):
    """The account's credentials no longer work; the user must reconnect."""

    kind = "auth_expired"


class Rejected(PublishError):
    """Permanent refusal (validation, content policy): retrying cannot help."""

    kind = "rejected"


class OutcomeUnknown(PublishError):
    """The request may have reached the platform; never post again blindly."""

    kind = "outcome_unknown"


class CannotTell(PublishError):
    """``find_published`` cannot determine whether a post exists on this platform."""

    kind = "cannot_tell"

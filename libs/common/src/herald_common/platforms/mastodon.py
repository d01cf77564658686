"""Mastodon: content rules, publishing through ``POST /api/v1/statuses``, and finding a post.

One adapter serves every instance: the account's ``instance_url`` (or the
``HERALD_MASTODON_API_BASE`` setting) says where to send each request.

Idempotency: every publish sends the target's stable key as ``Idempotency-Key``. Mastodon
stores it per account for one hour after it creates the status (PostStatusService:
``redis.setex("idempotency:status:#{account.id}:#{key}", 3600, status.id)``; documented on
POST /api/v1/statuses: "Idempotency keys are stored for up to 1 hour"), and a request with a
stored key returns the original status instead of creating another. That is why 5xx answers
are safe to treat as Transient here: the retries (1, 5, 15 min) carry the same key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from herald_common import clock
from herald_common.http import TRANSPORT_ERRORS, request_never_sent
from herald_common.platforms.base import (
    AccountCredentials,
    ContentProblem,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
)
from herald_common.platforms.errors import (
    AuthExpired,
    CannotTell,
    OutcomeUnknown,
    PublishError,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.platforms.text import MASTODON_URL_LENGTH, mastodon_length

# StatusLengthValidator::MAX_CHARS (mastodon/mastodon app/validators/status_length_validator.rb);
# instances may raise it, and publish their own value at /api/v2/instance.
MAX_CHARACTERS = 500
# Status::MEDIA_ATTACHMENTS_LIMIT (app/models/status.rb); the instance API publishes it as
# configuration.statuses.max_media_attachments.
MAX_MEDIA_ATTACHMENTS = 4
# POST /api/v1/statuses "visibility" (docs.joinmastodon.org/methods/statuses).
VISIBILITIES = ("public", "unlisted", "private", "direct")
# How long Mastodon remembers an Idempotency-Key (see the module docstring).
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=1)
# find_published only relies on the key while this much of its lifetime is left, to absorb
# clock differences between our hosts and the time the re-sent request itself takes.
IDEMPOTENCY_SAFETY_MARGIN = timedelta(minutes=5)
# When a 429 names no reset time we can read.
DEFAULT_RETRY_AFTER_SECONDS = 60.0
# A reset already in the past on our clock (skew) still means "not yet" on theirs.
MIN_RETRY_AFTER_SECONDS = 1.0

STATUSES_PATH = "/api/v1/statuses"


class Mastodon(Platform):
    name = "mastodon"
    limits = (
        # RateLimiter::FAMILIES[:statuses] (app/lib/rate_limiter.rb): 300 statuses per 3 hours
        # per account.
        RateLimit("statuses", capacity=300, per_seconds=3 * 3600, scope="account"),
        # config/initializers/rack_attack.rb, throttle_per_token_api: 300 requests per 5 minutes
        # per access token, i.e. per connected account (throttle_authenticated_api allows 1,500
        # per user across tokens); docs.joinmastodon.org/api/rate-limits.
        RateLimit("api", capacity=300, per_seconds=5 * 60, scope="account"),
    )

    def validate(self, content: PostContent) -> list[ContentProblem]:
        problems = []
        if not content.text.strip() and not content.media:
            problems.append(
                ContentProblem("content", "Mastodon needs some text or at least one attachment.")
            )
        # StatusLengthValidator counts the content warning and the text together.
        length = mastodon_length((content.content_warning or "") + content.text)
        if length > MAX_CHARACTERS:
            with_warning = " with its content warning" if content.content_warning else ""
            problems.append(
                ContentProblem(
                    "content",
                    f"Mastodon allows {MAX_CHARACTERS} characters (URLs count as "
                    f"{MASTODON_URL_LENGTH}); this post has {length}{with_warning}.",
                )
            )
        if content.visibility and content.visibility not in VISIBILITIES:
            problems.append(
                ContentProblem(
                    "visibility",
                    f"Mastodon visibility is one of {', '.join(VISIBILITIES)}; "
                    f"not {content.visibility!r}.",
                )
            )
        if content.thread:
            problems.append(
                ContentProblem("thread", "Herald cannot publish Mastodon threads yet; post one.")
            )
        if len(content.media) > MAX_MEDIA_ATTACHMENTS:
            problems.append(
                ContentProblem(
                    "media_ids",
                    f"Mastodon allows {MAX_MEDIA_ATTACHMENTS} attachments per post; this post "
                    f"has {len(content.media)}.",
                )
            )
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        return await self._create_status(request)

    async def find_published(self, request: PublishRequest) -> Published | None:
        """Whether ``request`` produced a status, answered through Mastodon's own idempotency.

        Statuses do not carry our key and their HTML ``content`` is not the text we sent, so a
        scan of the account's recent statuses can only guess. Mastodon itself can answer
        exactly, while it still remembers the key: re-sending the same request with the same
        ``Idempotency-Key`` returns the status the key created, or creates it now if the
        earlier attempt never landed. Either way exactly one status exists afterwards, and it
        is returned (this method never answers ``None``: "not found" is handled by creating).

        That is only safe while the key is remembered: one hour from when Mastodon created
        the status, which is no earlier than ``first_attempt_at``, when the first request with
        this key was sent. So the re-send happens only when ``first_attempt_at`` is known and
        more than :data:`IDEMPOTENCY_SAFETY_MARGIN` of the hour is left; otherwise this raises
        :class:`CannotTell` (the target becomes ``unknown`` and a person checks), because a
        re-send after the key expired would be a blind second post.

        Failures of the re-send are raised like :meth:`publish`'s (RateLimited, Transient,
        AuthExpired, Rejected, OutcomeUnknown); asking again later stays safe for as long as
        the window is open.
        """
        first_attempt_at = request.first_attempt_at
        if first_attempt_at is None:
            raise CannotTell(
                "Mastodon: cannot tell whether the post exists without knowing when it was "
                "first sent (its idempotency key is only remembered for one hour)"
            )
        age = clock.now() - first_attempt_at
        if age > IDEMPOTENCY_KEY_LIFETIME - IDEMPOTENCY_SAFETY_MARGIN:
            raise CannotTell(
                f"Mastodon: the post was first sent {_minutes(age)} ago; Mastodon forgets "
                "idempotency keys after one hour, so it can no longer say whether it exists"
            )
        return await self._create_status(request)

    def _api_base(self, account: AccountCredentials) -> str:
        return (account.instance_url or self.settings.mastodon_api_base).rstrip("/")

    async def _create_status(self, request: PublishRequest) -> Published:
        token = request.account.access_token
        if not token:
            raise AuthExpired("Mastodon: the account has no access token; reconnect it")
        content = request.content
        body: dict[str, Any] = {
            "status": content.text,
            "visibility": content.visibility or "public",
        }
        if content.media:
            body["media_ids"] = list(content.media)
        if content.content_warning:
            body["spoiler_text"] = content.content_warning
        try:
            response = await self.http.post(
                self._api_base(request.account) + STATUSES_PATH,
                json=body,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Idempotency-Key": request.idempotency_key,
                },
            )
        except TRANSPORT_ERRORS as exc:
            raise _transport_failure(exc) from exc
        return _published(response)


def _published(response: httpx.Response) -> Published:
    status = response.status_code
    if 200 <= status < 300:
        try:
            created = response.json()
            return Published(remote_id=str(created["id"]), remote_url=created.get("url"))
        except (ValueError, KeyError, TypeError) as exc:
            # Accepted, but we cannot say which status: only find_published can.
            raise OutcomeUnknown(
                f"Mastodon accepted the post but its answer was unreadable: {exc!r}",
                http_status=status,
            ) from exc
    message = _error_message(response)
    if status in (401, 403):
        raise AuthExpired(
            f"Mastodon refused the account's token ({status}): {message}", http_status=status
        )
    if status == 429:
        raise RateLimited(
            f"Mastodon rate limit: {message}",
            retry_after=_retry_after(response),
            http_status=status,
        )
    if status >= 500 or status == 408:
        raise Transient(f"Mastodon answered {status}: {message}", http_status=status)
    # 422 (validation: length, media, ...) and any other 4xx/3xx: sending it again cannot help.
    raise Rejected(f"Mastodon rejected the post: {message}", http_status=status)


def _transport_failure(exc: BaseException) -> PublishError:
    if request_never_sent(exc):
        return Transient(f"Mastodon could not be reached: {exc!r}")
    return OutcomeUnknown(f"Mastodon may have received the post, but no answer came: {exc!r}")


def _error_message(response: httpx.Response) -> str:
    """Mastodon's ``{"error": ...}`` text, or what there is when a proxy answered instead."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, str) and error:
        return error
    return response.text.strip()[:200] or response.reason_phrase or str(response.status_code)


def _retry_after(response: httpx.Response) -> float:
    """Seconds until Mastodon lets this account in again.

    Mastodon announces the reset as an ISO 8601 time in ``X-RateLimit-Reset``
    (rack_attack.rb's throttled_responder: ``(now + ...).iso8601(6)``); ``Retry-After``
    (seconds or an HTTP date) is read when a proxy in front answered instead.
    """
    reset = _parse_time(response.headers.get("X-RateLimit-Reset"), iso=True)
    if reset is None:
        retry_after = response.headers.get("Retry-After")
        if retry_after is not None and retry_after.strip().isdigit():
            return max(float(retry_after), MIN_RETRY_AFTER_SECONDS)
        reset = _parse_time(retry_after, iso=False)
    if reset is None:
        return DEFAULT_RETRY_AFTER_SECONDS
    return max((reset - clock.now()).total_seconds(), MIN_RETRY_AFTER_SECONDS)


def _parse_time(value: str | None, *, iso: bool) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value) if iso else parsedate_to_datetime(value)
    except (ValueError, TypeError):
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _minutes(age: timedelta) -> str:
    return f"{int(age.total_seconds() // 60)} minutes"

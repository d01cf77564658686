"""Mastodon: content rules, publishing through ``POST /api/v1/statuses``, and finding a post.

One adapter serves every instance: the account's ``instance_url`` (or the
``HERALD_MASTODON_API_BASE`` setting) says where to send each request.

Idempotency: every publish sends the target's stable key as ``Idempotency-Key``. Mastodon
stores it per account for one hour after it creates the status (PostStatusService:
``redis.setex("idempotency:status:#{account.id}:#{key}", 3600, status.id)``; documented on
POST /api/v1/statuses: "Idempotency keys are stored for up to 1 hour"), and a request with a
stored key returns the original status instead of creating another. That is why 5xx answers
are safe to treat as Transient here: the retries (1, 5, 15 min) carry the same key.

Pictures: each is uploaded with ``POST /api/v2/media`` (multipart ``file`` and ``description``,
the alt text) before the status is created, and the status names them in ``media_ids``
(docs.joinmastodon.org/methods/media). Since 4.0 images are processed at once and answer 200;
larger formats, and every upload on older servers, answer 202 with ``url: null`` and are
processed in the background, and ``GET /api/v1/media/:id`` answers 206 until they are done,
then 200. A status naming one that is still processing gets 422 "Cannot attach files that have
not finished processing. Try again in a moment!" (PostStatusService#validate_media!).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from herald_common import clock
from herald_common.http import TRANSPORT_ERRORS, retry_after_seconds, transport_failure
from herald_common.platforms.base import (
    AccountCredentials,
    ContentProblem,
    Media,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
    media_problems,
)
from herald_common.platforms.errors import (
    AuthExpired,
    CannotTell,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.platforms.mastodon_text import MASTODON_URL_LENGTH, mastodon_length
from herald_common.settings import Settings

# StatusLengthValidator::MAX_CHARS (mastodon/mastodon app/validators/status_length_validator.rb);
# instances may raise it, and publish their own value at /api/v2/instance.
MAX_CHARACTERS = 500
# Status::MEDIA_ATTACHMENTS_LIMIT (app/models/status.rb); the instance API publishes it as
# configuration.statuses.max_media_attachments.
MAX_MEDIA_ATTACHMENTS = 4
# MediaAttachment::IMAGE_LIMIT (app/models/media_attachment.rb: 16 MB in 4.x, 10 MB in older
# releases); an instance may change it with MAX_IMAGE_SIZE and publishes it as
# configuration.media_attachments.image_size_limit (16777216 on mastodon.social).
MAX_PICTURE_BYTES = 16 * 1024 * 1024
# Attachmentable::MAX_MATRIX_LIMIT (app/models/concerns/attachmentable.rb), 7680 x 4320: a larger
# picture gets 422 "WxH images are not supported" (configuration.media_attachments
# .image_matrix_limit). GIFs have their own, smaller GIF_MATRIX_LIMIT, 1280 x 720.
MAX_PICTURE_PIXELS = 33_177_600
MAX_GIF_PIXELS = 921_600
# MediaAttachment::MAX_DESCRIPTION_LENGTH (configuration.media_attachments.description_limit).
MAX_ALT_TEXT = 1_500
# Uploads never attached to a status are deleted once older than a day
# (Vacuum::MediaAttachmentsVacuum::TTL = 1.day, run by Scheduler::VacuumScheduler). Half of
# that leaves room for clock differences; a target's retries all fall well within it.
MEDIA_REFERENCE_TTL = timedelta(hours=12)
# How long to wait, between looks at GET /api/v1/media/:id, for a picture Mastodon is still
# processing: about 11 s in all, short next to the publisher's job timeout. Mastodon publishes
# no processing time, so this is a judgement; still not done, the attempt is Transient and the
# retry attaches the same upload.
MEDIA_POLL_DELAYS = (0.5, 1.0, 2.0, 4.0, 4.0)
# config/locales/en.yml media_attachments.validations.not_ready. The API answers in the
# instance's default locale (Api::BaseController skips set_locale), English unless the admin
# set DEFAULT_LOCALE; elsewhere this 422 is read as Rejected.
MEDIA_NOT_READY = "Cannot attach files that have not finished processing"
# POST /api/v1/statuses "visibility" (docs.joinmastodon.org/methods/statuses).
VISIBILITIES = ("public", "unlisted", "private", "direct")
# How long Mastodon remembers an Idempotency-Key (see the module docstring).
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=1)
# find_published only relies on the key while this much of its lifetime is left, to absorb
# clock differences between our hosts and the time the re-sent request itself takes.
IDEMPOTENCY_SAFETY_MARGIN = timedelta(minutes=5)
# find_later reads the account's newest statuses, GET /api/v1/accounts/:id/statuses, whose
# `limit` is at most 40 (docs.joinmastodon.org/methods/accounts/#statuses) ...
RECENT_STATUSES = 40
# ... from a little before the first attempt, for clock differences between hosts.
LOOKUP_MARGIN = timedelta(minutes=5)
# When a 429 names no reset time we can read.
DEFAULT_RETRY_AFTER_SECONDS = 60.0
# A reset already in the past on our clock (skew) still means "not yet" on theirs.
MIN_RETRY_AFTER_SECONDS = 1.0

STATUSES_PATH = "/api/v1/statuses"
ACCOUNT_STATUSES_PATH = "/api/v1/accounts/{id}/statuses"
# The text a status was written with (StatusSource: id, text, spoiler_text), read:statuses.
STATUS_SOURCE_PATH = "/api/v1/statuses/{id}/source"
MEDIA_PATH = "/api/v2/media"
MEDIA_ATTACHMENT_PATH = "/api/v1/media/{id}"


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
        # Uploads have their own limit, rack_attack.rb throttle_api_media: 30 POSTs to
        # /api/v*/media per 30 minutes per user. It is not a bucket here, because every bucket
        # is taken once per attempt, pictures or not; an upload over it answers 429 with
        # X-RateLimit-Reset, which is raised as RateLimited and waits out the account.
    )
    media_reference_ttl = MEDIA_REFERENCE_TTL
    # find_later reads the account's statuses, which stay readable after the key is forgotten.
    reconcilable = True

    def __init__(
        self,
        settings: Settings,
        http: httpx.AsyncClient,
        *,
        media_poll_delays: Sequence[float] = MEDIA_POLL_DELAYS,
    ) -> None:
        super().__init__(settings, http)
        self.media_poll_delays = tuple(media_poll_delays)

    def validate(self, content: PostContent) -> list[ContentProblem]:
        problems = []
        if not content.text.strip() and not content.media:
            problems.append(
                ContentProblem("content", "Mastodon needs some text or at least one attachment.")
            )
        # StatusLengthValidator counts the content warning (as written) and the text together.
        length = mastodon_length(content.text, content.content_warning or "")
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
        problems += media_problems(
            "Mastodon",
            content.media,
            max_count=MAX_MEDIA_ATTACHMENTS,
            max_bytes=MAX_PICTURE_BYTES,
            max_alt_text=MAX_ALT_TEXT,
            max_pixels=MAX_PICTURE_PIXELS,
        )
        problems += [
            ContentProblem(
                f"media_ids[{i}]",
                f"Mastodon takes GIFs up to {MAX_GIF_PIXELS:,} pixels (1280 x 720); this one is "
                f"{item.width} x {item.height}.",
            )
            for i, item in enumerate(content.media)
            if item.content_type == "image/gif" and item.width * item.height > MAX_GIF_PIXELS
        ]
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

    async def find_later(self, request: PublishRequest) -> Published | None:
        """The account's status that ``request`` created, found by reading, never sending:
        for a target left unknown once the idempotency key may be forgotten (an hour), when
        :meth:`find_published` can no longer re-send.

        Reads the account's newest statuses (``GET /api/v1/accounts/:id/statuses``) created
        since a little before the first attempt, and compares each one's source (``GET
        /api/v1/statuses/:id/source``: the text and content warning as sent, where the
        status's ``content`` is HTML) with ours, oldest first. A token without
        ``read:statuses`` (a pasted one may lack it) cannot tell.
        """
        token = request.account.access_token
        if not token:
            raise AuthExpired("Mastodon: the account has no access token; reconnect it")
        base = self._api_base(request.account)
        account = request.account.external_id
        listed = await self._read(
            token,
            f"{base}{ACCOUNT_STATUSES_PATH.format(id=account)}"
            f"?limit={RECENT_STATUSES}&exclude_reblogs=true",
        )
        since = request.first_attempt_at
        candidates = sorted(
            (
                (created, str(status["id"]), status.get("url"))
                for status in (listed if isinstance(listed, list) else [])
                if isinstance(status, dict) and status.get("id") is not None
                if (created := _created_at(status))
                and (since is None or created >= since - LOOKUP_MARGIN)
            ),
        )
        wanted = (request.content.text, request.content.content_warning or "")
        for _, status_id, url in candidates:
            source = await self._read(token, base + STATUS_SOURCE_PATH.format(id=status_id))
            if (
                isinstance(source, dict)
                and (
                    source.get("text"),
                    source.get("spoiler_text") or "",
                )
                == wanted
            ):
                return Published(
                    remote_id=status_id, remote_url=url if isinstance(url, str) else None
                )
        return None

    async def _read(self, token: str, url: str) -> Any:
        """A GET that only reads; its JSON."""
        try:
            response = await self.http.get(url, headers={"Authorization": f"Bearer {token}"})
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"Mastodon could not be read: {exc!r}") from exc
        if response.status_code == 403:
            raise CannotTell(
                "Mastodon: the account's token may not read its statuses (read:statuses): "
                + _error_message(response)
            )
        _raise_for_error(response, "the lookup")
        try:
            return response.json()
        except ValueError as exc:
            raise Transient("Mastodon answered a lookup with something other than JSON") from exc

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
            body["media_ids"] = await self._upload_media(request, token)
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
            raise transport_failure(exc, "Mastodon", "the post") from exc
        return _published(response)

    async def _upload_media(self, request: PublishRequest, token: str) -> list[str]:
        """Mastodon's id for each picture of ``request``, uploaded (or reused) and processed.

        Each new upload is remembered as soon as Mastodon answers, before waiting for its
        processing, so a retry after the wait ran out reuses it instead of uploading again.
        """
        processing: list[str] = []

        async def upload(item: Media, data: bytes) -> str:
            media_id, processed = await self._upload(request.account, token, item, data)
            if not processed:
                processing.append(media_id)
            return media_id

        media_ids = await self.upload_all(request, upload)
        await self._wait_until_processed(request.account, token, processing)
        return media_ids

    async def _upload(
        self, account: AccountCredentials, token: str, item: Media, data: bytes
    ) -> tuple[str, bool]:
        """``POST /api/v2/media``: the new attachment's id and whether it is processed."""
        extension = item.content_type.removeprefix("image/")
        try:
            response = await self.http.post(
                self._api_base(account) + MEDIA_PATH,
                files={"file": (f"{item.id}.{extension}", data, item.content_type)},
                data={"description": item.alt_text} if item.alt_text else {},
                headers={"Authorization": f"Bearer {token}"},
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, "Mastodon", "the picture") from exc
        _raise_for_error(response, "the picture")
        try:
            media_id = str(response.json()["id"])
        except (ValueError, KeyError, TypeError) as exc:
            # Stored, perhaps, but under an id we cannot read: only a stray copy.
            raise Transient(
                f"Mastodon took the picture but its answer was unreadable: {exc!r}",
                http_status=response.status_code,
            ) from exc
        return media_id, response.status_code != 202

    async def _wait_until_processed(
        self, account: AccountCredentials, token: str, media_ids: Sequence[str]
    ) -> None:
        """Ask ``GET /api/v1/media/:id`` after each of :attr:`media_poll_delays` until every one
        of ``media_ids`` is processed; still processing after the last: Transient."""
        pending = list(media_ids)
        for delay in self.media_poll_delays:
            if not pending:
                return
            await asyncio.sleep(delay)
            done = await asyncio.gather(*(self._processed(account, token, m) for m in pending))
            pending = [m for m, processed in zip(pending, done, strict=True) if not processed]
        if pending:
            raise Transient(
                f"Mastodon was still processing {len(pending)} picture(s) after "
                f"{sum(self.media_poll_delays):.0f} s; the retry attaches them"
            )

    async def _processed(self, account: AccountCredentials, token: str, media_id: str) -> bool:
        try:
            response = await self.http.get(
                self._api_base(account) + MEDIA_ATTACHMENT_PATH.format(id=media_id),
                headers={"Authorization": f"Bearer {token}"},
            )
        except TRANSPORT_ERRORS as exc:
            # Only a look: nothing is created by it, whatever became of the request.
            raise Transient(f"Mastodon could not be asked about a picture: {exc!r}") from exc
        _raise_for_error(response, "the picture")
        return response.status_code != 206


def _published(response: httpx.Response) -> Published:
    _raise_for_error(response, "the post")
    try:
        created = response.json()
        return Published(remote_id=str(created["id"]), remote_url=created.get("url"))
    except (ValueError, KeyError, TypeError) as exc:
        # Accepted, but we cannot say which status: only find_published can.
        raise OutcomeUnknown(
            f"Mastodon accepted the post but its answer was unreadable: {exc!r}",
            http_status=response.status_code,
        ) from exc


def _raise_for_error(response: httpx.Response, what: str) -> None:
    """Raise the failure a non-2xx answer about ``what`` ("the post", "the picture") means."""
    status = response.status_code
    if 200 <= status < 300:
        return
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
        raise Transient(
            f"Mastodon answered {status}: {message}",
            http_status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), clock.now()),
        )
    if status == 422 and MEDIA_NOT_READY in message:
        # A picture reused from an earlier attempt is still being processed: only a wait helps.
        raise Transient(f"Mastodon: {message}", http_status=status)
    # 422 (validation: length, file type, ...), 413 (a proxy's body limit) and any other
    # 4xx/3xx: sending it again cannot help.
    raise Rejected(f"Mastodon rejected {what}: {message}", http_status=status)


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
    """Seconds until Mastodon lets this account in again."""
    wait = seconds_until_reset(response)
    return DEFAULT_RETRY_AFTER_SECONDS if wait is None else max(wait, MIN_RETRY_AFTER_SECONDS)


def seconds_until_reset(response: httpx.Response) -> float | None:
    """Seconds until the reset a 429 from Mastodon announces (negative when it has passed on
    our clock), or ``None`` when it names none that can be read.

    Mastodon announces the reset as an ISO 8601 time in ``X-RateLimit-Reset``
    (rack_attack.rb's throttled_responder: ``(now + ...).iso8601(6)``); ``Retry-After``
    (seconds or an HTTP date) is read when a proxy in front answered instead.
    """
    now = clock.now()
    reset = response.headers.get("X-RateLimit-Reset")
    if reset:
        try:
            moment = datetime.fromisoformat(reset)
        except ValueError:
            pass
        else:
            moment = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
            return (moment - now).total_seconds()
    return retry_after_seconds(response.headers.get("Retry-After"), now)


def _created_at(status: dict[str, Any]) -> datetime | None:
    """A Status entity's ``created_at`` (ISO 8601, ``...T12:00:00.000Z``), or None."""
    try:
        moment = datetime.fromisoformat(str(status.get("created_at") or ""))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _minutes(age: timedelta) -> str:
    return f"{int(age.total_seconds() // 60)} minutes"

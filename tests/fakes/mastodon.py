"""A local fake Mastodon server that behaves like the real one where Herald can tell.

It is a small Starlette app served by uvicorn on a free 127.0.0.1 port, in a background thread
with its own event loop, so adapters talk to it over real HTTP through the real transport::

    with FakeMastodon(tokens={"token-a": "alice"}) as fake:   # or fake.start() / fake.stop()
        settings = base_settings.model_copy(update={"mastodon_api_base": fake.base_url})
        ...
        assert [s.text for s in fake.statuses] == ["hello"]

What it does like Mastodon:

- ``POST /api/v1/statuses`` (JSON body) needs ``Authorization: Bearer <token>`` for one
  of its accounts, else 401 ``{"error": "The access token is invalid"}``; counts length with
  Mastodon's rule (:func:`herald_common.platforms.mastodon_text.mastodon_length`) and answers 422
  ``{"error": "Validation failed: Text character limit of 500 exceeded"}`` when over; honours
  ``Idempotency-Key`` per account for one hour after the status was created (the same key
  returns the same status and creates nothing); answers a Status entity (string id,
  ``created_at``, HTML ``content``, ``url`` ``https://{domain}/@{username}/{id}``, ``uri``,
  ``visibility``, ``account``, ...).
- ``POST /api/v2/media`` (multipart ``file`` and ``description``): the same token check; the
  bytes must be a picture Mastodon takes (JPEG, PNG, GIF, WebP, read with Pillow), else 422
  ``{"error": "Validation failed: File content type is invalid, File is invalid"}``; 422 too
  for a file over 16 MB, more pixels than Mastodon allows, or alt text over 1,500
  characters. Answers 200 with a MediaAttachment (``url`` set), or, after
  :meth:`~FakeMastodon.process_uploads_in_background`, 202 with ``url: null``.
  Uploads are throttled like rack_attack's ``throttle_api_media``: ``media_upload_limit``
  (30) per account per 30-minute window, then 429 with the X-RateLimit-* headers.
- ``GET /api/v1/media/{id}``: 206 while the account's unattached upload is processing, 200
  when done, 404 ``{"error": "Record not found"}`` for another account's, an attached or an
  unknown one.
- ``media_ids`` on ``POST /api/v1/statuses``: ids that are not the account's unattached
  uploads get 422 ``Media 1, 2 not found or already attached to another post``; one still
  processing gets 422 ``Cannot attach files that have not finished processing. Try again in
  a moment!``; otherwise they are attached, in order, and listed in the status's
  ``media_attachments`` with their ``description``.
- ``GET /api/v1/accounts/verify_credentials``, ``GET /api/v1/accounts/{id}/statuses``
  (newest first, ``limit`` default 20, at most 40) and ``GET /api/v1/statuses/{id}/source``
  (``{"id", "text", "spoiler_text"}``, the status as it was sent).
- OAuth: ``POST /api/v1/apps``, ``GET /oauth/authorize``, ``POST /oauth/token`` (with PKCE),
  ``POST /oauth/revoke``; see tests/fakes/mastodon_oauth.py (``fake.oauth``). A token revoked
  there gets 401 ``{"error": "The access token was revoked"}`` from the API.

What tests read: :attr:`FakeMastodon.statuses` (every status it created, oldest first, as
:class:`FakeStatus`), :attr:`FakeMastodon.media` (every upload it stored, as
:class:`FakeMedia`) and :attr:`FakeMastodon.requests` (every request, as
:class:`FakeRequest`, with the status code it was answered with, ``None`` when dropped).

Faults, queued in order and consumed one per ``POST /api/v1/statuses`` (after the token check,
as Mastodon's own throttling and errors come after authentication):

- :meth:`~FakeMastodon.rate_limit_next`: 429 with ``X-RateLimit-Limit``,
  ``X-RateLimit-Remaining: 0`` and an ISO 8601 ``X-RateLimit-Reset``; nothing created.
- :meth:`~FakeMastodon.fail_next`: any status code (503 by default) with an ``error``;
  nothing created.
- :meth:`~FakeMastodon.delay_next`: the status is created, the answer comes late (a client
  with a shorter read timeout gives up: an outcome it cannot know).
- :meth:`~FakeMastodon.drop_next`: the status is created, then the connection is closed with
  no answer at all (the client sees the server disconnect).

Uploads have their own queue: :meth:`~FakeMastodon.fail_next_upload` answers the next
``POST /api/v2/media`` with any status code and stores nothing.

Time comes from ``clock`` (``herald_common.clock.now`` unless given), so a test that moves
Herald's clock forward also ages the fake's idempotency keys and rate-limit resets.
"""

from __future__ import annotations

import asyncio
import html
import io
import itertools
import random
import threading
import warnings
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from herald_common import clock as herald_clock
from herald_common.platforms.mastodon_text import mastodon_length
from tests.fakes.mastodon_oauth import MastodonOAuth
from tests.fakes.server import DropConnection, DropConnectionSupport, ThreadedServer

# The same numbers as the real server (see herald_common.platforms.mastodon for sources).
MAX_CHARACTERS = 500
MAX_MEDIA_ATTACHMENTS = 4
IDEMPOTENCY_KEY_LIFETIME = timedelta(hours=1)
MAX_PICTURE_BYTES = 16 * 1024 * 1024
MAX_PICTURE_PIXELS = 33_177_600
MAX_GIF_PIXELS = 921_600
MAX_ALT_TEXT = 1_500
# rack_attack.rb throttle_api_media: 30 uploads per 30 minutes per user.
MEDIA_UPLOAD_LIMIT = 30
MEDIA_UPLOAD_PERIOD_SECONDS = 30 * 60
# MediaAttachment::IMAGE_MIME_TYPES that Pillow can read (HEIC and AVIF need plugins).
PICTURE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
STATUSES_LIMIT_DEFAULT = 20
STATUSES_LIMIT_MAX = 40

DEFAULT_TOKEN = "fake-mastodon-token"
DEFAULT_USERNAME = "herald"


@dataclass(frozen=True, slots=True)
class FakeAccount:
    id: str
    username: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FakeStatus:
    """A status the fake accepted, as tests read it."""

    id: str
    account_id: str
    text: str
    idempotency_key: str | None
    created_at: datetime
    visibility: str
    media_ids: tuple[str, ...] = ()
    spoiler_text: str = ""


@dataclass(slots=True)
class FakeMedia:
    """An upload the fake stored, as tests read it (a copy)."""

    id: str
    account_id: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    description: str | None
    processed: bool
    # GETs still to be answered 206 before processing ends; None: it never ends.
    pending_polls: int | None = 0
    status_id: str | None = None


@dataclass(frozen=True, slots=True)
class FakeRequest:
    """One request the fake received. ``status_code`` is ``None`` when it dropped the connection."""

    method: str
    path: str
    token: str | None
    idempotency_key: str | None
    status_code: int | None


@dataclass(frozen=True, slots=True)
class _Fault:
    kind: str  # "rate_limit" | "fail" | "delay" | "drop"
    status_code: int = 0
    error: str = ""
    seconds: float = 0.0
    limit: int = 0
    retry_after: str | None = None


@dataclass
class _State:
    accounts_by_token: dict[str, FakeAccount] = field(default_factory=dict)
    statuses: list[FakeStatus] = field(default_factory=list)
    requests: list[FakeRequest] = field(default_factory=list)
    faults: deque[_Fault] = field(default_factory=deque)
    # (account id, key) -> (status id, when Mastodon stored it)
    idempotency: dict[tuple[str, str], tuple[str, datetime]] = field(default_factory=dict)
    media: dict[str, FakeMedia] = field(default_factory=dict)
    media_faults: deque[_Fault] = field(default_factory=deque)
    # (account id, throttle window) -> uploads counted in it, as rack_attack keeps them
    media_uploads: dict[tuple[str, int], int] = field(default_factory=dict)
    # Set by process_uploads_in_background: the GETs a new upload answers 206 to (None:
    # never done); unset, uploads are processed at once, as still images are since 4.0.
    background_polls: int | None = 0
    background: bool = False


class FakeMastodon:
    """A running-on-demand fake Mastodon; see the module docstring for what it does."""

    def __init__(
        self,
        tokens: Mapping[str, str] | None = None,
        *,
        domain: str = "mastodon.test",
        clock: Callable[[], datetime] = herald_clock.now,
        media_upload_limit: int = MEDIA_UPLOAD_LIMIT,
    ) -> None:
        """``tokens`` maps each valid access token to the username of the account it acts for
        (default: one account, ``herald``, with token :data:`DEFAULT_TOKEN`);
        ``media_upload_limit`` is how many uploads an account may make per 30 minutes."""
        self._chaos: Callable[[], _Fault | None] | None = None
        self.domain = domain
        self.media_upload_limit = media_upload_limit
        self._clock = clock
        self._lock = threading.Lock()
        self._ids = itertools.count(110_000_000_000_000_001)
        self._state = _State()
        self.oauth = MastodonOAuth(self)
        for token, username in (tokens or {DEFAULT_TOKEN: DEFAULT_USERNAME}).items():
            self.add_account(token, username)
        self._port: int | None = None
        self.app = DropConnectionSupport(self._build_app())
        self._http = ThreadedServer(self.app, "fake-mastodon")

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        if self._port is None:
            raise RuntimeError("the fake Mastodon server is not running; call start() first")
        return f"http://127.0.0.1:{self._port}"

    def start(self, timeout: float = 10.0) -> FakeMastodon:
        self._port = self._http.start(timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._http.stop(timeout)
        self._port = None

    def __enter__(self) -> FakeMastodon:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- accounts ----------------------------------------------------------------------------

    def add_account(self, token: str, username: str) -> FakeAccount:
        """Make ``token`` valid for the account ``username`` (created if new)."""
        with self._lock:
            for account in self._state.accounts_by_token.values():
                if account.username == username:
                    break
            else:
                account = FakeAccount(str(next(self._ids)), username, self._clock())
            self._state.accounts_by_token[token] = account
            return account

    def revoke_token(self, token: str) -> None:
        """From now on ``token`` gets 401, as after the user revoked the app."""
        with self._lock:
            self._state.accounts_by_token.pop(token, None)

    def account_for(self, token: str) -> FakeAccount:
        with self._lock:
            return self._state.accounts_by_token[token]

    # -- what tests read ---------------------------------------------------------------------

    @property
    def statuses(self) -> list[FakeStatus]:
        """Every status created so far, oldest first (a copy)."""
        with self._lock:
            return list(self._state.statuses)

    @property
    def requests(self) -> list[FakeRequest]:
        """Every request received so far, in order (a copy)."""
        with self._lock:
            return list(self._state.requests)

    @property
    def media(self) -> list[FakeMedia]:
        """Every upload stored so far, oldest first (copies)."""
        with self._lock:
            return [replace(media) for media in self._state.media.values()]

    def reset(self) -> None:
        """Forget statuses, uploads, requests, idempotency keys, throttle counts and queued
        faults, and process uploads at once again; keep the accounts."""
        with self._lock:
            self._state.statuses.clear()
            self._state.requests.clear()
            self._state.faults.clear()
            self._state.idempotency.clear()
            self._state.media.clear()
            self._state.media_faults.clear()
            self._state.media_uploads.clear()
            self._state.background = False

    # -- media processing ----------------------------------------------------------------------

    def process_uploads_in_background(self, pending_polls: int | None = 1) -> None:
        """From now on uploads answer 202 with ``url: null``, as larger media do on Mastodon,
        and the first ``pending_polls`` GETs of each answer 206 (``None``: every one does)."""
        with self._lock:
            self._state.background = True
            self._state.background_polls = pending_polls

    def finish_processing(self) -> None:
        """Every upload still processing is done now."""
        with self._lock:
            for media in self._state.media.values():
                media.processed = True

    # -- fault injection (each consumed by one POST /api/v1/statuses, in the order queued) ----

    def rate_limit_next(
        self, times: int = 1, *, reset_after: timedelta = timedelta(seconds=60), limit: int = 300
    ) -> None:
        """Answer 429 with Mastodon's X-RateLimit-* headers, reset ``reset_after`` from now."""
        self._queue(times, _Fault("rate_limit", seconds=reset_after.total_seconds(), limit=limit))

    def fail_next(
        self,
        times: int = 1,
        *,
        status_code: int = 503,
        error: str = "Service Unavailable",
        retry_after: str | None = None,
    ) -> None:
        """Answer ``status_code`` with ``{"error": error}`` (and ``Retry-After``, as a proxy in
        front of an instance may send with a 503) and create nothing."""
        self._queue(
            times, _Fault("fail", status_code=status_code, error=error, retry_after=retry_after)
        )

    def delay_next(self, times: int = 1, *, seconds: float) -> None:
        """Create the status, then wait ``seconds`` before answering."""
        self._queue(times, _Fault("delay", seconds=seconds))

    def drop_next(self, times: int = 1) -> None:
        """Create the status, then close the connection without answering."""
        self._queue(times, _Fault("drop"))

    def fail_next_upload(
        self, times: int = 1, *, status_code: int = 503, error: str = "Service Unavailable"
    ) -> None:
        """Answer the next ``POST /api/v2/media`` with ``status_code`` and store nothing."""
        with self._lock:
            self._state.media_faults.extend(
                [_Fault("fail", status_code=status_code, error=error)] * times
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._state.faults.clear()
            self._state.media_faults.clear()
            self._chaos = None

    def chaos(
        self,
        *,
        seed: int,
        fail: float = 0.0,
        slow: float = 0.0,
        slow_seconds: float = 3.0,
        drop: float = 0.0,
        rate_limit: float = 0.0,
        rate_limit_reset: timedelta = timedelta(seconds=2),
    ) -> None:
        """Random faults for every POST with no queued fault: each rate is the chance of that
        fault (5xx, an answer slower than ``slow_seconds``, accept-then-drop, a 429 burst)."""
        rng = random.Random(seed)
        table = [
            (fail, _Fault("fail", status_code=503, error="Service Unavailable")),
            (slow, _Fault("delay", seconds=slow_seconds)),
            (drop, _Fault("drop")),
            (
                rate_limit,
                _Fault("rate_limit", seconds=rate_limit_reset.total_seconds(), limit=300),
            ),
        ]

        def pick() -> _Fault | None:
            roll = rng.random()
            for chance, fault in table:
                if roll < chance:
                    return fault
                roll -= chance
            return None

        with self._lock:
            self._chaos = pick

    def _queue(self, times: int, fault: _Fault) -> None:
        with self._lock:
            self._state.faults.extend([fault] * times)

    # -- the HTTP API ------------------------------------------------------------------------

    def _build_app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/v1/statuses", self._create_status, methods=["POST"]),
                Route("/api/v2/media", self._upload_media, methods=["POST"]),
                Route("/api/v1/media/{id}", self._show_media, methods=["GET"]),
                Route(
                    "/api/v1/accounts/verify_credentials",
                    self._verify_credentials,
                    methods=["GET"],
                ),
                Route("/api/v1/accounts/{id}/statuses", self._account_statuses, methods=["GET"]),
                Route("/api/v1/statuses/{id}/source", self._status_source, methods=["GET"]),
                *self.oauth.routes(),
            ]
        )

    async def _create_status(self, request: Request) -> Response:
        account, token = self._authenticate(request)
        key = request.headers.get("Idempotency-Key")
        if account is None:
            return self._answer(request, token, key, self._unauthorized(token))
        params = await _params(request)
        fault = self._next_fault()
        if fault is not None and fault.kind in ("rate_limit", "fail"):
            return self._answer(request, token, key, self._fault_response(fault))

        with self._lock:
            status, error = self._create_or_replay(account, params, key)
        if error is not None:
            return self._answer(request, token, key, error)
        assert status is not None
        response = JSONResponse(self._status_json(status, account))

        if fault is not None and fault.kind == "delay":
            await asyncio.sleep(fault.seconds)
        if fault is not None and fault.kind == "drop":
            self._record(request, token, key, None)
            return DropConnection()
        return self._answer(request, token, key, response)

    def _create_or_replay(
        self, account: FakeAccount, params: dict[str, Any], key: str | None
    ) -> tuple[FakeStatus | None, Response | None]:
        """PostStatusService, in short: replay a remembered key, else validate and create.
        Called with the lock held."""
        now = self._clock()
        if key:
            remembered = self._state.idempotency.get((account.id, key))
            if remembered is not None and now - remembered[1] < IDEMPOTENCY_KEY_LIFETIME:
                return self._status_by_id(remembered[0]), None

        text = str(params.get("status") or "")
        media_ids = tuple(str(m) for m in params.get("media_ids") or ())
        if len(media_ids) > MAX_MEDIA_ATTACHMENTS:
            return None, _unprocessable("Cannot attach more than 4 files")
        media_error = self._media_error(account, media_ids)
        if media_error is not None:
            return None, media_error
        if not text.strip() and not media_ids:
            return None, _unprocessable("Validation failed: Text can't be blank")
        spoiler_text = str(params.get("spoiler_text") or "")
        if mastodon_length(text, spoiler_text) > MAX_CHARACTERS:
            return None, _unprocessable(
                f"Validation failed: Text character limit of {MAX_CHARACTERS} exceeded"
            )

        status = FakeStatus(
            id=str(next(self._ids)),
            account_id=account.id,
            text=text,
            idempotency_key=key,
            created_at=now,
            visibility=str(params.get("visibility") or "public"),
            media_ids=media_ids,
            spoiler_text=spoiler_text,
        )
        self._state.statuses.append(status)
        for media_id in media_ids:
            self._state.media[media_id].status_id = status.id
        if key:
            self._state.idempotency[(account.id, key)] = (status.id, now)
        return status, None

    def _media_error(self, account: FakeAccount, media_ids: tuple[str, ...]) -> Response | None:
        """PostStatusService#validate_media!: every id an unattached upload of the account's,
        each processed. Called with the lock held."""
        missing = [m for m in media_ids if self._unattached(account, m) is None]
        if missing:
            return _unprocessable(
                f"Media {', '.join(missing)} not found or already attached to another post"
            )
        if any(not self._state.media[m].processed for m in media_ids):
            return _unprocessable(
                "Cannot attach files that have not finished processing. Try again in a moment!"
            )
        return None

    def _unattached(self, account: FakeAccount, media_id: str) -> FakeMedia | None:
        media = self._state.media.get(media_id)
        if media is None or media.account_id != account.id or media.status_id is not None:
            return None
        return media

    async def _upload_media(self, request: Request) -> Response:
        account, token = self._authenticate(request)
        if account is None:
            return self._answer(request, token, None, self._unauthorized(token))
        # rack_attack throttles before the request reaches Mastodon's controller.
        throttled = self._throttle_upload(account)
        if throttled is not None:
            return self._answer(request, token, None, throttled)
        with self._lock:
            fault = self._state.media_faults.popleft() if self._state.media_faults else None
        if fault is not None:
            return self._answer(request, token, None, self._fault_response(fault))

        form = await request.form()
        upload = form.get("file")
        description = form.get("description")
        if not isinstance(upload, UploadFile):
            return self._answer(
                request, token, None, _unprocessable("Validation failed: File can't be blank")
            )
        data = await upload.read()
        await form.close()
        picture = _picture(data)
        if isinstance(picture, Response):
            return self._answer(request, token, None, picture)
        content_type, width, height = picture
        if isinstance(description, str) and len(description) > MAX_ALT_TEXT:
            return self._answer(
                request,
                token,
                None,
                _unprocessable(
                    "Validation failed: Description is too long (maximum is "
                    f"{MAX_ALT_TEXT} characters)"
                ),
            )
        with self._lock:
            media = FakeMedia(
                id=str(next(self._ids)),
                account_id=account.id,
                content_type=content_type,
                width=width,
                height=height,
                size_bytes=len(data),
                description=description if isinstance(description, str) else None,
                processed=not self._state.background,
                pending_polls=self._state.background_polls if self._state.background else 0,
            )
            self._state.media[media.id] = media
            body = self._media_json(media)
        status_code = 200 if media.processed else 202
        return self._answer(request, token, None, JSONResponse(body, status_code=status_code))

    async def _show_media(self, request: Request) -> Response:
        account, token = self._authenticate(request)
        if account is None:
            return self._answer(request, token, None, self._unauthorized(token))
        with self._lock:
            media = self._unattached(account, request.path_params["id"])
            if media is None:
                response: Response = JSONResponse({"error": "Record not found"}, status_code=404)
            else:
                if not media.processed:
                    if media.pending_polls is None or media.pending_polls > 0:
                        if media.pending_polls is not None:
                            media.pending_polls -= 1
                    else:
                        media.processed = True
                status_code = 200 if media.processed else 206
                response = JSONResponse(self._media_json(media), status_code=status_code)
        return self._answer(request, token, None, response)

    def _throttle_upload(self, account: FakeAccount) -> Response | None:
        """rack_attack's fixed windows: a count per account per period-aligned window."""
        now = self._clock()
        epoch = int(now.timestamp())
        window = epoch // MEDIA_UPLOAD_PERIOD_SECONDS
        with self._lock:
            count = self._state.media_uploads.get((account.id, window), 0) + 1
            self._state.media_uploads[(account.id, window)] = count
        if count <= self.media_upload_limit:
            return None
        reset = now + timedelta(
            seconds=MEDIA_UPLOAD_PERIOD_SECONDS - epoch % MEDIA_UPLOAD_PERIOD_SECONDS
        )
        return too_many_requests(self.media_upload_limit, reset)

    async def _verify_credentials(self, request: Request) -> Response:
        account, token = self._authenticate(request)
        if account is None:
            return self._answer(request, token, None, self._unauthorized(token))
        body = self._account_json(account) | {"source": {"privacy": "public", "note": ""}}
        return self._answer(request, token, None, JSONResponse(body))

    async def _account_statuses(self, request: Request) -> Response:
        account, token = self._authenticate(request)
        if account is None:
            return self._answer(request, token, None, self._unauthorized(token))
        try:
            limit = int(request.query_params.get("limit", STATUSES_LIMIT_DEFAULT))
        except ValueError:
            limit = STATUSES_LIMIT_DEFAULT
        limit = max(1, min(limit, STATUSES_LIMIT_MAX))
        wanted = request.path_params["id"]
        with self._lock:
            owner = next(
                (a for a in self._state.accounts_by_token.values() if a.id == wanted), None
            )
            mine = [s for s in self._state.statuses if s.account_id == wanted]
        if owner is None:
            return self._answer(
                request, token, None, JSONResponse({"error": "Record not found"}, status_code=404)
            )
        newest = sorted(mine, key=lambda s: int(s.id), reverse=True)[:limit]
        body = [self._status_json(status, owner) for status in newest]
        return self._answer(request, token, None, JSONResponse(body))

    async def _status_source(self, request: Request) -> Response:
        """StatusSource: the text and content warning as they were sent (read:statuses)."""
        account, token = self._authenticate(request)
        if account is None:
            return self._answer(request, token, None, self._unauthorized(token))
        with self._lock:
            status = next(
                (s for s in self._state.statuses if s.id == request.path_params["id"]), None
            )
        if status is None:
            return self._answer(
                request, token, None, JSONResponse({"error": "Record not found"}, status_code=404)
            )
        body = {"id": status.id, "text": status.text, "spoiler_text": status.spoiler_text}
        return self._answer(request, token, None, JSONResponse(body))

    # -- helpers -----------------------------------------------------------------------------

    def _authenticate(self, request: Request) -> tuple[FakeAccount | None, str | None]:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None, None
        with self._lock:
            return self._state.accounts_by_token.get(token), token

    def _unauthorized(self, token: str | None) -> Response:
        return _unauthorized(token, revoked=self.oauth.revoked_token(token))

    def _next_fault(self) -> _Fault | None:
        with self._lock:
            if self._state.faults:
                return self._state.faults.popleft()
            return self._chaos() if self._chaos is not None else None

    def _fault_response(self, fault: _Fault) -> Response:
        if fault.kind == "rate_limit":
            reset = self._clock() + timedelta(seconds=fault.seconds)
            return too_many_requests(fault.limit, reset)
        headers = {"Retry-After": fault.retry_after} if fault.retry_after is not None else None
        return JSONResponse({"error": fault.error}, status_code=fault.status_code, headers=headers)

    def _answer(
        self, request: Request, token: str | None, key: str | None, response: Response
    ) -> Response:
        self._record(request, token, key, response.status_code)
        return response

    def _record(
        self, request: Request, token: str | None, key: str | None, status_code: int | None
    ) -> None:
        with self._lock:
            self._state.requests.append(
                FakeRequest(request.method, request.url.path, token, key, status_code)
            )

    def _status_by_id(self, status_id: str) -> FakeStatus:
        return next(s for s in self._state.statuses if s.id == status_id)

    def _account_json(self, account: FakeAccount) -> dict[str, Any]:
        with self._lock:
            count = sum(1 for s in self._state.statuses if s.account_id == account.id)
        return {
            "id": account.id,
            "username": account.username,
            "acct": account.username,
            "display_name": account.username,
            "locked": False,
            "bot": False,
            "group": False,
            "created_at": _iso8601(account.created_at, digits=3),
            "note": "",
            "url": f"https://{self.domain}/@{account.username}",
            "uri": f"https://{self.domain}/users/{account.username}",
            "avatar": f"https://{self.domain}/avatars/original/missing.png",
            "header": f"https://{self.domain}/headers/original/missing.png",
            "followers_count": 0,
            "following_count": 0,
            "statuses_count": count,
            "emojis": [],
            "fields": [],
        }

    def _status_json(self, status: FakeStatus, account: FakeAccount) -> dict[str, Any]:
        return {
            "id": status.id,
            "created_at": _iso8601(status.created_at, digits=3),
            "in_reply_to_id": None,
            "in_reply_to_account_id": None,
            "sensitive": bool(status.spoiler_text),
            "spoiler_text": status.spoiler_text,
            "visibility": status.visibility,
            "language": "en",
            "uri": f"https://{self.domain}/users/{account.username}/statuses/{status.id}",
            "url": f"https://{self.domain}/@{account.username}/{status.id}",
            "replies_count": 0,
            "reblogs_count": 0,
            "favourites_count": 0,
            "edited_at": None,
            "content": _html(status.text),
            "reblog": None,
            "application": {"name": "Herald", "website": None},
            "account": self._account_json(account),
            "media_attachments": self._attachments_json(status.media_ids),
            "mentions": [],
            "tags": [],
            "emojis": [],
            "card": None,
            "poll": None,
        }

    def _attachments_json(self, media_ids: tuple[str, ...]) -> list[dict[str, Any]]:
        with self._lock:
            return [self._media_json(self._state.media[m]) for m in media_ids]

    def _media_json(self, media: FakeMedia) -> dict[str, Any]:
        """A MediaAttachment entity; ``url`` is null while the file is processing."""
        files = f"https://files.{self.domain}/media_attachments/files/{media.id}"
        extension = media.content_type.removeprefix("image/")
        size = {
            "width": media.width,
            "height": media.height,
            "size": f"{media.width}x{media.height}",
            "aspect": media.width / media.height,
        }
        return {
            "id": media.id,
            # (Mastodon makes an animated GIF a "gifv"; the tests' pictures are still.)
            "type": "image",
            "url": f"{files}/original/{media.id}.{extension}" if media.processed else None,
            "preview_url": f"{files}/small/{media.id}.{extension}",
            "remote_url": None,
            "meta": {"original": size, "small": size},
            "description": media.description,
            "blurhash": None,
        }


async def _params(request: Request) -> dict[str, Any]:
    """The request's JSON parameters. (Mastodon also takes form bodies; Herald sends JSON.)"""
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _unauthorized(token: str | None, *, revoked: bool) -> Response:
    if revoked:
        error = "The access token was revoked"
    elif token is not None:
        error = "The access token is invalid"
    else:
        error = "This method requires an authenticated user"
    return JSONResponse({"error": error}, status_code=401)


def _unprocessable(error: str) -> Response:
    return JSONResponse({"error": error}, status_code=422)


def too_many_requests(limit: int, reset: datetime) -> Response:
    """rack_attack.rb's throttled_responder."""
    return JSONResponse(
        {"error": "Too many requests"},
        status_code=429,
        headers={
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": _iso8601(reset),
        },
    )


def _picture(data: bytes) -> tuple[str, int, int] | Response:
    """The type and size of the picture in ``data``, or the 422 Mastodon answers for it
    (MediaAttachment's content type and size validations, Attachmentable's pixel limits)."""
    try:
        with warnings.catch_warnings():
            # Pillow warns about huge pictures; only their header is read here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as picture:
                content_type = Image.MIME.get(picture.format or "")
                width, height = picture.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        content_type, width, height = None, 0, 0
    if content_type not in PICTURE_TYPES:
        return _unprocessable("Validation failed: File content type is invalid, File is invalid")
    assert content_type is not None
    if content_type == "image/gif" and width * height > MAX_GIF_PIXELS:
        return _unprocessable(f"{width}x{height} GIF files are not supported")
    if width * height > MAX_PICTURE_PIXELS:
        return _unprocessable(f"{width}x{height} images are not supported")
    if len(data) > MAX_PICTURE_BYTES:
        # Paperclip's size validation; the wording is close to, not copied from, Mastodon's.
        return _unprocessable("Validation failed: File file size must be less than 16 MB")
    return content_type, width, height


def _html(text: str) -> str:
    """Plain text rendered the way Mastodon's TextFormatter does for the simple cases:
    paragraphs on blank lines, ``<br />`` on single newlines, everything escaped."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "".join(
        "<p>" + "<br />".join(html.escape(line, quote=False) for line in p.split("\n")) + "</p>"
        for p in paragraphs
    )


def _iso8601(moment: datetime, digits: int = 6) -> str:
    """Ruby's ``Time#iso8601(digits)`` in UTC, as Mastodon formats times: ``...00.123456Z``."""
    utc = moment.astimezone(UTC)
    fraction = f"{utc.microsecond:06d}"[:digits]
    return utc.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction}Z"

"""Bluesky (AT Protocol): sessions, ``app.bsky.feed.post`` records with facets, and a real
idempotency mechanism through deterministic record keys.

An account is a handle plus an app password (stored as its access token); ``instance_url`` is
its PDS when not the ``HERALD_BLUESKY_API_BASE`` default. The adapter logs in with
``com.atproto.server.createSession`` once per account and process, keeps the session, renews
it with ``refreshSession`` when the access token expires, and logs in again only when the
refresh token no longer works: createSession is limited to 30 per 5 minutes and 300 per day
per account (docs.bsky.app/docs/advanced-guides/rate-limits), so logging in per post would
lock the account out.

Idempotency: every post's record key (``rkey``) is derived from the target, so a retry writes
the same record key. A PDS refuses to create a record whose key exists (today with a 500,
bluesky-social/atproto#3718; an explicit error is proposed in #4728), so a retry collides
instead of posting twice, and :meth:`Bluesky.find_published` is an exact
``com.atproto.repo.getRecord`` of that key. Keys are valid TIDs (the post lexicon's key type),
built from the target id's UUIDv7 time, so they also sort like ordinary posts.

Pictures go on the first post of a thread as an ``app.bsky.embed.images`` embed. Each is
uploaded first with ``com.atproto.repo.uploadBlob``, which answers with a blob reference (its
CID, type and size); that reference, as JSON, is what Herald remembers, so a retry embeds the
same blob instead of uploading it again. A PDS keeps an unreferenced upload only for a while
(see ``media_reference_ttl``), and if it has forgotten one anyway the post is refused with
``BlobNotFound``: the pictures are then uploaded afresh, once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any
from uuid import UUID

import httpx

from herald_common import clock
from herald_common.http import (
    TRANSPORT_ERRORS,
    json_object,
    retry_after_seconds,
    transport_failure,
)
from herald_common.platforms.base import (
    ContentProblem,
    Media,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
    media_problems,
    unsupported,
)
from herald_common.platforms.errors import (
    AuthExpired,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.platforms.text import (
    Facet,
    bluesky_facets,
    grapheme_count,
    utf8_length,
)
from herald_common.settings import Settings

POST_COLLECTION = "app.bsky.feed.post"
# app.bsky.feed.post lexicon: text maxGraphemes 300, maxLength 3000 (UTF-8 bytes).
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
# app.bsky.embed.images lexicon: "images" maxLength 4; each "image" a blob with accept
# ["image/*"] and maxSize 1,000,000 bytes (checked by the PDS when the post is created).
# Every type Herald stores is one the app view can show (its image server reads JPEG, PNG,
# GIF and WebP; an animated GIF shows as a still).
MAX_IMAGES = 4
MAX_IMAGE_BYTES = 1_000_000
IMAGES_EMBED = "app.bsky.embed.images"
DEFAULT_RETRY_AFTER_SECONDS = 60.0
MIN_RETRY_AFTER_SECONDS = 1.0
# TID encoding (atproto.com/specs/tid): 13 characters of base32-sortable.
_TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
_CLOCK_ID_BITS = 10
# Session errors that mean "log in again" rather than "the request was wrong".
_EXPIRED = ("ExpiredToken", "InvalidToken", "AuthenticationRequired")


@dataclass(frozen=True, slots=True)
class _Session:
    did: str
    access_jwt: str
    refresh_jwt: str


@dataclass(frozen=True, slots=True)
class _Record:
    uri: str
    cid: str


class Bluesky(Platform):
    name = "bluesky"
    limits = (
        # docs.bsky.app/docs/advanced-guides/rate-limits: 5,000 points per hour and 35,000
        # per day per account (DID), a CREATE costing 3 points.
        RateLimit("writes", capacity=5000, per_seconds=3600, scope="account", cost=3),
        RateLimit("writes_daily", capacity=35_000, per_seconds=24 * 3600, scope="account", cost=3),
    )
    # Same page: createSession is limited per handle to 30 per 5 minutes (and 300 per day).
    # Not a publish bucket (a publish normally reuses its session): the adapter keeps to it.
    session_limit = RateLimit("createSession", capacity=30, per_seconds=5 * 60)
    # uploadBlob is no record write, so it costs none of the write points above; the PDS
    # limits it on its own, to 1,000 per day per client IP (@atproto/pds
    # api/com/atproto/repo/uploadBlob.js, rateLimit DAY/1000, keyed by req.ip), and answers 429
    # past that, which maps to RateLimited like any other. A per-picture count cannot be a
    # per-publish bucket, so it is not one here.
    # The atproto blob spec (atproto.com/specs/blob, "Usage and Implementation Guidelines")
    # asks PDSes to keep unreferenced uploads "several hours ... with at least one hour a firm
    # lower bound"; uploadBlob's lexicon only says "a time window (eg, minutes)". Reuse an
    # upload for 45 minutes, leaving a quarter of the guaranteed hour for the attempt itself.
    media_reference_ttl = timedelta(minutes=45)

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        super().__init__(settings, http)
        # Sessions live in the adapter, one per account (and app password) per process: a
        # publisher process logs in once per account, then only refreshes.
        self._sessions: dict[tuple[UUID, str], _Session] = {}
        self._locks: dict[tuple[UUID, str], asyncio.Lock] = {}
        self._logins: dict[tuple[UUID, str], list[float]] = {}
        self._login_blocked_until: dict[tuple[UUID, str], float] = {}

    def validate(self, content: PostContent) -> list[ContentProblem]:
        problems = []
        if not content.text.strip() and not content.media:
            problems.append(
                ContentProblem("content", "A Bluesky post needs some text or a picture.")
            )
        for field, text in [("content", content.text)] + [
            (f"thread[{index}]", text) for index, text in enumerate(content.thread)
        ]:
            graphemes = grapheme_count(text)
            if graphemes > MAX_GRAPHEMES:
                problems.append(
                    ContentProblem(
                        field,
                        f"Bluesky allows {MAX_GRAPHEMES} characters; this post has {graphemes}.",
                    )
                )
            elif utf8_length(text) > MAX_BYTES:
                problems.append(
                    ContentProblem(
                        field,
                        f"Bluesky allows {MAX_BYTES} bytes of text; this post has "
                        f"{utf8_length(text)} (emoji and non-Latin scripts take several).",
                    )
                )
            elif field != "content" and not text.strip():
                problems.append(
                    ContentProblem(field, "A post of a Bluesky thread cannot be empty.")
                )
        problems += media_problems(
            "Bluesky", content.media, max_count=MAX_IMAGES, max_bytes=MAX_IMAGE_BYTES
        )
        problems += unsupported(
            content,
            {
                "content_warning": (
                    "Bluesky has labels rather than free-text content warnings; remove it."
                ),
                "visibility": "Bluesky posts are always public.",
            },
        )
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        """Create the post (and each further part of a thread, as a reply), each under its
        deterministic record key; a part that already exists is taken as created. Pictures are
        uploaded (or reused) before anything is created and go on the first part."""
        parts = [request.content.text, *request.content.thread]
        embed = await self._images_embed(request)
        created: list[_Record] = []
        for index, text in enumerate(parts):
            rkey = record_key(request, index)
            record: dict[str, Any] = {
                "$type": POST_COLLECTION,
                "text": text,
                "createdAt": _timestamp(clock.now()),
            }
            facets = await self._facets(request, text)
            if facets:
                record["facets"] = facets
            if created:
                record["reply"] = {
                    "root": {"uri": created[0].uri, "cid": created[0].cid},
                    "parent": {"uri": created[-1].uri, "cid": created[-1].cid},
                }
            elif embed is not None:
                record["embed"] = embed
            try:
                created.append(await self._create(request, rkey, record))
            except _BlobNotFound:
                if not request.uploaded:
                    raise  # the blobs were uploaded just now: retrying cannot help
                # The PDS forgot an upload an earlier attempt made: upload them all again.
                record["embed"] = await self._images_embed(replace(request, uploaded={}))
                created.append(await self._create(request, rkey, record))
        return _published(created[0])

    async def find_published(self, request: PublishRequest) -> Published | None:
        """Exactly: whether every record key of the post exists.

        ``None`` when some are missing, including a thread cut short: publishing again is
        safe, since the parts that exist collide and are kept.
        """
        found = [
            await self._get_record(request, record_key(request, index))
            for index in range(1 + len(request.content.thread))
        ]
        if any(record is None for record in found):
            return None
        assert found[0] is not None
        return _published(found[0])

    # -- pictures ------------------------------------------------------------------------------

    async def _images_embed(self, request: PublishRequest) -> dict[str, Any] | None:
        media = request.content.media
        if not media:
            return None
        references = await self.upload_all(request, partial(self._upload_blob, request))
        return images_embed(media, [json.loads(reference) for reference in references])

    async def _upload_blob(self, request: PublishRequest, item: Media, data: bytes) -> str:
        """Upload one picture; its blob reference as JSON (what Herald remembers)."""
        try:
            response = await self._xrpc(
                request,
                "POST",
                "com.atproto.repo.uploadBlob",
                content=data,
                headers={"Content-Type": item.content_type},
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, "Bluesky", "the picture") from exc
        status = response.status_code
        if status in (400, 413):
            # 400 InvalidRequest (an empty or unreadable body), 413 PayloadTooLarge (past the
            # PDS's own upload limit, 50 MB on Bluesky's): another attempt gets the same.
            raise Rejected(
                f"Bluesky refused the picture ({status}): {_error(response)}", http_status=status
            )
        _raise_for_error(response)
        blob = json_object(response).get("blob")
        if not _is_blob(blob):
            raise OutcomeUnknown(
                "Bluesky accepted the picture but its answer was unreadable", http_status=status
            )
        return json.dumps(blob)

    # -- records -------------------------------------------------------------------------------

    async def _create(self, request: PublishRequest, rkey: str, record: dict[str, Any]) -> _Record:
        session = await self._session(request)
        try:
            response = await self._xrpc(
                request,
                "POST",
                "com.atproto.repo.createRecord",
                json={
                    "repo": session.did,
                    "collection": POST_COLLECTION,
                    "rkey": rkey,
                    "record": record,
                },
            )
        except TRANSPORT_ERRORS as exc:
            raise transport_failure(exc, "Bluesky", "the post") from exc
        status = response.status_code
        if 200 <= status < 300:
            body = json_object(response)
            if isinstance(body.get("uri"), str) and isinstance(body.get("cid"), str):
                return _Record(body["uri"], body["cid"])
            raise OutcomeUnknown(
                "Bluesky accepted the post but its answer was unreadable", http_status=status
            )
        error = _error(response)
        if status == 400 and _is(response, "BlobNotFound"):
            raise _BlobNotFound(f"Bluesky lost a picture: {error}", http_status=status)
        if status >= 500 or status == 409 or "exist" in error.lower():
            # An earlier attempt may have created this very key: then the PDS refuses the
            # create (a 500 today), and the record is ours.
            existing = await self._get_record(request, rkey)
            if existing is not None:
                return existing
        _raise_for_error(response)
        raise Rejected(f"Bluesky rejected the post ({status}): {error}", http_status=status)

    async def _get_record(self, request: PublishRequest, rkey: str) -> _Record | None:
        session = await self._session(request)
        try:
            response = await self._xrpc(
                request,
                "GET",
                "com.atproto.repo.getRecord",
                params={"repo": session.did, "collection": POST_COLLECTION, "rkey": rkey},
            )
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"Bluesky: the record could not be read: {exc!r}") from exc
        body = json_object(response)
        if response.status_code == 400 and body.get("error") == "RecordNotFound":
            return None
        _raise_for_error(response)
        if isinstance(body.get("uri"), str) and isinstance(body.get("cid"), str):
            return _Record(body["uri"], body["cid"])
        raise Transient("Bluesky answered getRecord without the record's uri and cid")

    async def _facets(self, request: PublishRequest, text: str) -> list[dict[str, Any]]:
        """Facets for links, tags and the mentions whose handles resolve (an unknown handle
        stays plain text, as in the Bluesky app)."""
        facets = []
        for facet in bluesky_facets(text):
            feature: dict[str, Any]
            if facet.kind == "link":
                feature = {"$type": "app.bsky.richtext.facet#link", "uri": facet.value}
            elif facet.kind == "tag":
                feature = {"$type": "app.bsky.richtext.facet#tag", "tag": facet.value}
            else:
                did = await self._resolve_handle(request, facet)
                if did is None:
                    continue
                feature = {"$type": "app.bsky.richtext.facet#mention", "did": did}
            facets.append(
                {
                    "index": {"byteStart": facet.byte_start, "byteEnd": facet.byte_end},
                    "features": [feature],
                }
            )
        return facets

    async def _resolve_handle(self, request: PublishRequest, facet: Facet) -> str | None:
        try:
            response = await self._xrpc(
                request,
                "GET",
                "com.atproto.identity.resolveHandle",
                params={"handle": facet.value},
                authenticated=False,
            )
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"Bluesky: @{facet.value} could not be resolved: {exc!r}") from exc
        if response.status_code == 400:
            return None  # "Unable to resolve handle": not a Bluesky account
        _raise_for_error(response)
        did = json_object(response).get("did")
        return did if isinstance(did, str) else None

    # -- sessions ------------------------------------------------------------------------------

    async def _xrpc(
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
        url = f"{self._api_base(request)}/xrpc/{nsid}"
        if not authenticated:
            return await self.http.request(method, url, headers=headers, **kwargs)
        session = await self._session(request)
        response = await self.http.request(
            method, url, headers={**(headers or {}), **_bearer(session)}, **kwargs
        )
        if not _session_expired(response):
            return response
        session = await self._renew(request, session)
        return await self.http.request(
            method, url, headers={**(headers or {}), **_bearer(session)}, **kwargs
        )

    async def _session(self, request: PublishRequest) -> _Session:
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

    async def _renew(self, request: PublishRequest, stale: _Session) -> _Session:
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

    async def _refresh_session(self, request: PublishRequest, stale: _Session) -> _Session | None:
        try:
            response = await self.http.post(
                f"{self._api_base(request)}/xrpc/com.atproto.server.refreshSession",
                headers={"Authorization": f"Bearer {stale.refresh_jwt}"},
            )
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"Bluesky: the session could not be refreshed: {exc!r}") from exc
        if _session_expired(response):
            return None  # the refresh token expired or was revoked: log in again
        _raise_for_error(response)
        return _parse_session(response)

    async def _create_session(self, request: PublishRequest) -> _Session:
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
        limit = self.session_limit
        recent = [t for t in self._logins.get(key, []) if now - t < limit.per_seconds]
        if len(recent) >= limit.capacity:
            raise RateLimited(
                f"Bluesky allows {limit.capacity} logins per {int(limit.per_seconds)} s",
                retry_after=limit.per_seconds - (now - recent[0]),
            )
        self._logins[key] = [*recent, now]
        try:
            response = await self.http.post(
                f"{self._api_base(request)}/xrpc/com.atproto.server.createSession",
                json={"identifier": request.account.handle, "password": password},
            )
        except TRANSPORT_ERRORS as exc:
            raise Transient(f"Bluesky could not be reached to log in: {exc!r}") from exc
        if response.status_code == 429:
            wait = _retry_after(response)
            self._login_blocked_until[key] = now + wait
        if response.status_code in (400, 401) and not _is(response, "RateLimitExceeded"):
            raise AuthExpired(
                f"Bluesky refused the account's app password: {_error(response)}",
                http_status=response.status_code,
            )
        _raise_for_error(response)
        return _parse_session(response)

    def _lock(self, key: tuple[UUID, str]) -> asyncio.Lock:
        return self._locks.setdefault(key, asyncio.Lock())

    def _api_base(self, request: PublishRequest) -> str:
        return (request.account.instance_url or self.settings.bluesky_api_base).rstrip("/")


def record_key(request: PublishRequest, part: int = 0) -> str:
    """The record key of part ``part`` of the post ``request`` creates: the same for every
    attempt, and a valid TID (atproto.com/specs/tid).

    A TID is 64 bits: a zero, 53 bits of microseconds since the epoch, a 10-bit clock id.
    The time is the target id's UUIDv7 milliseconds (plus the part number in microseconds,
    so a thread's parts sort in order); the clock id comes from a hash of the idempotency
    key, so two targets created in the same millisecond still differ.
    """
    digest = hashlib.sha256(f"{request.idempotency_key}:{part}".encode()).digest()
    target = request.target_id
    if target.version == 7:
        micros = (target.int >> 80) * 1000 + part
    else:
        # No time in the id (only tests build such requests): any fixed 53-bit value works.
        micros = int.from_bytes(digest[:8], "big") >> 11
    clock_id = int.from_bytes(digest[8:10], "big") & ((1 << _CLOCK_ID_BITS) - 1)
    value = ((micros & ((1 << 53) - 1)) << _CLOCK_ID_BITS) | clock_id
    chars = []
    for _ in range(13):
        chars.append(_TID_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def images_embed(media: Sequence[Media], blobs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``app.bsky.embed.images`` embed of ``media``, uploaded as ``blobs`` (in order). The
    lexicon requires ``alt`` (empty when there is none); the aspect ratio lets the app lay the
    picture out before it loads."""
    return {
        "$type": IMAGES_EMBED,
        "images": [
            {
                "alt": item.alt_text or "",
                "image": blob,
                "aspectRatio": {"width": item.width, "height": item.height},
            }
            for item, blob in zip(media, blobs, strict=True)
        ],
    }


class _BlobNotFound(Rejected):
    """createRecord named a blob the PDS does not hold (``BlobNotFound``)."""


def _is_blob(value: object) -> bool:
    # {"$type": "blob", "ref": {"$link": cid}, "mimeType": ..., "size": ...} (atproto data model)
    return (
        isinstance(value, dict)
        and value.get("$type") == "blob"
        and isinstance(value.get("ref"), dict)
        and isinstance(value["ref"].get("$link"), str)
        and isinstance(value.get("mimeType"), str)
        and isinstance(value.get("size"), int)
    )


def _bearer(session: _Session) -> dict[str, str]:
    return {"Authorization": f"Bearer {session.access_jwt}"}


def _published(record: _Record) -> Published:
    # at://{did}/app.bsky.feed.post/{rkey} -> https://bsky.app/profile/{did}/post/{rkey}
    did, _, rkey = record.uri.removeprefix("at://").partition(f"/{POST_COLLECTION}/")
    return Published(remote_id=record.uri, remote_url=f"https://bsky.app/profile/{did}/post/{rkey}")


def _session_key(request: PublishRequest) -> tuple[UUID, str]:
    # A changed app password must not reuse the old password's session.
    secret = hashlib.sha256((request.account.access_token or "").encode()).hexdigest()
    return (request.account.account_id, secret)


def _parse_session(response: httpx.Response) -> _Session:
    body = json_object(response)
    try:
        return _Session(str(body["did"]), str(body["accessJwt"]), str(body["refreshJwt"]))
    except KeyError as exc:
        raise Transient(f"Bluesky answered a login without {exc}") from exc


def _session_expired(response: httpx.Response) -> bool:
    # The PDS answers 400 ExpiredToken for an expired access token and 401 for a bad one.
    return response.status_code in (400, 401) and any(_is(response, e) for e in _EXPIRED)


def _is(response: httpx.Response, error: str) -> bool:
    return json_object(response).get("error") == error


def _raise_for_error(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    error = _error(response)
    if status == 429:
        raise RateLimited(
            f"Bluesky rate limit: {error}", retry_after=_retry_after(response), http_status=status
        )
    if status in (401, 403) or _session_expired(response):
        raise AuthExpired(f"Bluesky refused the account ({status}): {error}", http_status=status)
    if status >= 500 or status == 408:
        raise Transient(f"Bluesky answered {status}: {error}", http_status=status)
    # 400 InvalidRequest: the record failed validation (too long, bad facets, ...).
    raise Rejected(f"Bluesky rejected the post ({status}): {error}", http_status=status)


def _error(response: httpx.Response) -> str:
    """XRPC errors are ``{"error": name, "message": text}`` (atproto.com/specs/xrpc)."""
    body = json_object(response)
    name, message = body.get("error"), body.get("message")
    if isinstance(name, str) or isinstance(message, str):
        return ": ".join(str(part) for part in (name, message) if part)
    return response.text.strip()[:200] or response.reason_phrase or str(response.status_code)


def _retry_after(response: httpx.Response) -> float:
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


def _timestamp(moment: datetime) -> str:
    # The lexicon's datetime format; the Bluesky app writes milliseconds and "Z".
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )

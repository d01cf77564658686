"""Bluesky (AT Protocol): sessions, ``app.bsky.feed.post`` records with facets, and a real
idempotency mechanism through deterministic record keys.

An account is a handle plus an app password (stored as its access token); ``instance_url`` is
its PDS when not the ``HERALD_BLUESKY_API_BASE`` default. Its session (one login per account
and process, renewed rather than repeated, within createSession's own limit) is kept by
bluesky_session.py; what XRPC answers mean is in bluesky_xrpc.py.

Idempotency: every post's record key (``rkey``) is derived from the target
(bluesky_record_key.py), so a retry writes the same record key. A PDS refuses to create a
record whose key exists (today with a 500, bluesky-social/atproto#3718; an explicit error is
proposed in #4728), so a retry collides instead of posting twice, and
:meth:`Bluesky.find_published` is an exact ``com.atproto.repo.getRecord`` of that key.

Pictures go on the first post of a thread as an ``app.bsky.embed.images`` embed. Each is
uploaded first with ``com.atproto.repo.uploadBlob``, which answers with a blob reference (its
CID, type and size); that reference, as JSON, is what Herald remembers, so a retry embeds the
same blob instead of uploading it again. A PDS keeps an unreferenced upload only for a while
(see ``media_reference_ttl``), and if it has forgotten one anyway the post is refused with
``BlobNotFound``: the pictures are then uploaded afresh, once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import httpx

from herald_common import clock
from herald_common.http import TRANSPORT_ERRORS, json_object, transport_failure
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
from herald_common.platforms.bluesky_record_key import record_key
from herald_common.platforms.bluesky_session import Sessions
from herald_common.platforms.bluesky_xrpc import error_text, is_error, raise_for_error
from herald_common.platforms.errors import OutcomeUnknown, Rejected, Transient
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


@dataclass(frozen=True, slots=True)
class _Record:
    uri: str
    cid: str


class Bluesky(Platform):
    name = "bluesky"
    threads = True
    # The record key is known, so getRecord can answer at any time (find_published).
    reconcilable = True
    limits = (
        # docs.bsky.app/docs/advanced-guides/rate-limits: 5,000 points per hour and 35,000
        # per day per account (DID), a CREATE costing 3 points.
        RateLimit("writes", capacity=5000, per_seconds=3600, scope="account", cost=3),
        RateLimit("writes_daily", capacity=35_000, per_seconds=24 * 3600, scope="account", cost=3),
    )
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
        self.sessions = Sessions(settings, http)

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
            response = await self.sessions.xrpc(
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
                f"Bluesky refused the picture ({status}): {error_text(response)}",
                http_status=status,
            )
        raise_for_error(response)
        blob = json_object(response).get("blob")
        if not _is_blob(blob):
            raise OutcomeUnknown(
                "Bluesky accepted the picture but its answer was unreadable", http_status=status
            )
        return json.dumps(blob)

    # -- records -------------------------------------------------------------------------------

    async def _create(self, request: PublishRequest, rkey: str, record: dict[str, Any]) -> _Record:
        session = await self.sessions.session(request)
        try:
            response = await self.sessions.xrpc(
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
        error = error_text(response)
        if status == 400 and is_error(response, "BlobNotFound"):
            raise _BlobNotFound(f"Bluesky lost a picture: {error}", http_status=status)
        if status >= 500 or status == 409 or "exist" in error.lower():
            # An earlier attempt may have created this very key: then the PDS refuses the
            # create (a 500 today), and the record is ours.
            existing = await self._get_record(request, rkey)
            if existing is not None:
                return existing
        raise_for_error(response)
        raise Rejected(f"Bluesky rejected the post ({status}): {error}", http_status=status)

    async def _get_record(self, request: PublishRequest, rkey: str) -> _Record | None:
        session = await self.sessions.session(request)
        try:
            response = await self.sessions.xrpc(
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
        raise_for_error(response)
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
            response = await self.sessions.xrpc(
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
        raise_for_error(response)
        did = json_object(response).get("did")
        return did if isinstance(did, str) else None


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


def _published(record: _Record) -> Published:
    # at://{did}/app.bsky.feed.post/{rkey} -> https://bsky.app/profile/{did}/post/{rkey}
    did, _, rkey = record.uri.removeprefix("at://").partition(f"/{POST_COLLECTION}/")
    return Published(remote_id=record.uri, remote_url=f"https://bsky.app/profile/{did}/post/{rkey}")


def _timestamp(moment: datetime) -> str:
    # The lexicon's datetime format; the Bluesky app writes milliseconds and "Z".
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )

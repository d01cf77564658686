"""The contract every platform adapter implements (DESIGN.md, "Platforms").

One module per platform subclasses :class:`Platform`. Adapters are stateless apart from the
shared HTTP client they are built with, so one instance serves every account of a platform.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import ClassVar, Protocol
from uuid import UUID

import httpx

from herald_common.platforms.errors import CannotTell, OutcomeUnknown, Rejected, Transient
from herald_common.settings import Settings


@dataclass(frozen=True, slots=True)
class ContentProblem:
    """Something a person must change before a post can go out."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class Media:
    """A picture attached to a post, as Herald stored it (``POST /v1/media``). Its bytes are
    read on demand through :class:`MediaSource`, only by adapters that upload them."""

    id: UUID
    # Sniffed from the bytes at upload, never taken from the client: one of MEDIA_TYPES.
    content_type: str
    size_bytes: int
    width: int
    height: int
    alt_text: str | None = None


# What Herald stores: still pictures every platform Herald attaches media to accepts.
MEDIA_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


class MediaSource(Protocol):
    """Where an adapter reads a post's pictures and remembers what it uploaded them as, so a
    retry of the same target reuses the upload instead of uploading again."""

    async def read(self, media_id: UUID) -> bytes: ...

    async def remember(self, media_id: UUID, reference: str) -> None: ...


class NoMedia:
    """The source of a request that carries no pictures."""

    async def read(self, media_id: UUID) -> bytes:
        raise Rejected("This post has no stored picture " + str(media_id) + ".")

    async def remember(self, media_id: UUID, reference: str) -> None:
        return None


@dataclass(frozen=True, slots=True)
class PostContent:
    text: str
    media: Sequence[Media] = ()
    # Further posts of a thread, each published as a reply to the one before it on platforms
    # that thread by reply (X, Bluesky); the others refuse content that has any.
    thread: Sequence[str] = ()
    # A content warning shown in front of the text (Mastodon's ``spoiler_text``).
    content_warning: str | None = None
    # Who may see the post, in the platform's own words (Mastodon: public, unlisted, private,
    # direct; LinkedIn: PUBLIC, CONNECTIONS); ``None`` is the platform's public default.
    visibility: str | None = None


def unsupported(content: PostContent, messages: Mapping[str, str]) -> list[ContentProblem]:
    """A problem for each field of ``content`` that is set but the platform lacks, with the
    platform's own words for it (``messages`` maps field name to message, in order)."""
    return [
        ContentProblem(REQUEST_FIELDS.get(field, field), message)
        for field, message in messages.items()
        if getattr(content, field)
    ]


# Where a PostContent field comes from in the API's requests, for problem paths.
REQUEST_FIELDS = {"media": "media_ids"}


@dataclass(frozen=True, slots=True)
class AccountCredentials:
    """What an adapter needs to act for one connected account (tokens already decrypted)."""

    account_id: UUID
    workspace_id: UUID
    external_id: str
    handle: str
    access_token: str | None = None
    instance_url: str | None = None


@dataclass(frozen=True, slots=True)
class Published:
    remote_id: str
    remote_url: str | None = None


@dataclass(frozen=True, slots=True)
class RateLimit:
    """A published limit: ``capacity`` requests per ``per_seconds``.

    ``scope`` is ``app`` (one bucket for the whole platform) or ``account`` (one per account).
    """

    name: str
    capacity: int
    per_seconds: float
    scope: str = "account"
    cost: int = 1


@dataclass(frozen=True, slots=True)
class PublishRequest:
    account: AccountCredentials
    content: PostContent
    # Stable for the target's whole life, so the platform (or our lookup) can recognise a retry.
    idempotency_key: str
    target_id: UUID = field(default_factory=lambda: UUID(int=0))
    # When the earliest attempt that may have reached the platform was sent; lets an adapter
    # whose platform remembers idempotency keys for a while know whether it still does.
    first_attempt_at: datetime | None = None
    # The bytes of ``content.media`` and a place to remember uploads.
    media_source: MediaSource = field(default_factory=NoMedia)
    # What earlier attempts of this target uploaded each picture as (media id -> the
    # platform's reference), already filtered by the adapter's ``media_reference_ttl``.
    uploaded: Mapping[UUID, str] = field(default_factory=dict)


class Platform(ABC):
    name: ClassVar[str]
    limits: ClassVar[tuple[RateLimit, ...]] = ()
    # Whether the platform publishes ``PostContent.thread`` (as replies, one after another);
    # the others refuse content that has one.
    threads: ClassVar[bool] = False
    # Whether :meth:`find_later` can look for a post hours after its outcome was left
    # unknown, so the reconciliation pass asks this platform again for a while.
    reconcilable: ClassVar[bool] = False
    # How long the platform keeps a picture uploaded but not yet attached to a post; an
    # upload older than this is done again rather than reused. None: it never expires.
    media_reference_ttl: ClassVar[timedelta | None] = None

    def __init__(self, settings: Settings, http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.http = http

    @abstractmethod
    def validate(self, content: PostContent) -> list[ContentProblem]:
        """Every problem with ``content`` for this platform; empty when it can be published."""

    @abstractmethod
    async def publish(self, request: PublishRequest) -> Published:
        """Create the post or raise one of :mod:`herald_common.platforms.errors`."""

    @abstractmethod
    async def find_published(self, request: PublishRequest) -> Published | None:
        """Whether ``request`` already produced a post: it, ``None``, or raise CannotTell."""

    async def find_later(self, request: PublishRequest) -> Published | None:
        """Look again, later, for a post whose outcome was left unknown: it, ``None`` (not
        there, or not listed yet), or raise CannotTell. It only reads: it never sends the
        post. By default :meth:`find_published`, for the platforms whose lookup only reads;
        one whose lookup re-sends (Mastodon's, under its idempotency key) overrides this."""
        if not self.reconcilable:
            raise CannotTell(f"{self.name} cannot be asked later whether a post exists")
        return await self.find_published(request)

    async def upload_all(
        self, request: PublishRequest, upload: Callable[[Media, bytes], Awaitable[str]]
    ) -> list[str]:
        """The platform's reference for each picture of ``request``, in order: reused from an
        earlier attempt of the target, or read, uploaded with ``upload`` and remembered at once
        (before the post is created, so a crash in between never uploads it twice).

        An upload that may or may not have landed is only a stray copy on the platform, never
        a second post, so its :class:`OutcomeUnknown` becomes :class:`Transient`.
        """

        async def one(item: Media) -> str:
            known = request.uploaded.get(item.id)
            if known is not None:
                return known
            data = await request.media_source.read(item.id)
            try:
                reference = await upload(item, data)
            except OutcomeUnknown as exc:
                raise Transient(
                    f"Uploading a picture: {exc.message}", http_status=exc.http_status
                ) from exc
            await request.media_source.remember(item.id, reference)
            return reference

        return list(await asyncio.gather(*(one(item) for item in request.content.media)))


def media_problems(
    platform: str,
    media: Sequence[Media],
    *,
    max_count: int,
    max_bytes: int,
    types: Sequence[str] = MEDIA_TYPES,
    max_alt_text: int | None = None,
    max_pixels: int | None = None,
    field_name: str = "media_ids",
) -> list[ContentProblem]:
    """The usual checks of a platform's picture rules, with paths like ``media_ids[2]``."""
    problems = []
    if len(media) > max_count:
        problems.append(
            ContentProblem(
                field_name,
                f"{platform} allows {max_count} picture{'s' if max_count != 1 else ''} per "
                f"post; this post has {len(media)}.",
            )
        )
    for i, item in enumerate(media):
        path = f"{field_name}[{i}]"
        if item.content_type not in types:
            kinds = ", ".join(t.removeprefix("image/").upper() for t in types)
            problems.append(
                ContentProblem(
                    path,
                    f"{platform} takes {kinds} pictures; this one is {item.content_type}.",
                )
            )
        if item.size_bytes > max_bytes:
            problems.append(
                ContentProblem(
                    path,
                    f"{platform} takes pictures up to {size_text(max_bytes)}; this one is "
                    f"{size_text(item.size_bytes)}.",
                )
            )
        if max_pixels is not None and item.width * item.height > max_pixels:
            problems.append(
                ContentProblem(
                    path,
                    f"{platform} takes pictures up to {max_pixels:,} pixels; this one is "
                    f"{item.width} x {item.height}.",
                )
            )
        if max_alt_text is not None and len(item.alt_text or "") > max_alt_text:
            problems.append(
                ContentProblem(
                    path,
                    f"{platform} allows {max_alt_text} characters of alt text; this picture "
                    f"has {len(item.alt_text or '')}.",
                )
            )
    return problems


def size_text(size_bytes: int) -> str:
    """A size the way platforms state their limits: exact when it is a whole number of MiB
    (16 MiB) or MB (10 MB), else in decimal units (1 MB = 1,000,000 bytes)."""
    for unit, name in ((1024 * 1024, "MiB"), (1_000_000, "MB"), (1000, "KB")):
        if size_bytes >= unit and size_bytes % unit == 0:
            return f"{size_bytes // unit} {name}"
    if size_bytes < 1_000_000:
        return f"{size_bytes / 1000:.0f} KB"
    return f"{size_bytes / 1_000_000:.1f} MB"

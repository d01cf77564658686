"""The contract every platform adapter implements (DESIGN.md, "Platforms").

One module per platform subclasses :class:`Platform`. Adapters are stateless apart from the
shared HTTP client they are built with, so one instance serves every account of a platform.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar
from uuid import UUID

import httpx

from herald_common.settings import Settings


@dataclass(frozen=True, slots=True)
class ContentProblem:
    """Something a person must change before a post can go out."""

    field: str
    message: str


@dataclass(frozen=True, slots=True)
class PostContent:
    text: str
    media_ids: Sequence[str] = ()
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
        ContentProblem(field, message)
        for field, message in messages.items()
        if getattr(content, field)
    ]


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


class Platform(ABC):
    name: ClassVar[str]
    limits: ClassVar[tuple[RateLimit, ...]] = ()

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

"""What the posts API accepts and answers. Validation of shape happens here, at the edge."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictBool,
    model_validator,
)

from herald_api.problems import FieldProblem
from herald_common.statuses import PostStatus, TargetStatus

MAX_CONTENT_LENGTH = 100_000
MAX_TARGETS = 50
# LinkedIn's multi-image post, the most any platform attaches; each platform checks its own.
MAX_MEDIA = 20
# A thread longer than this is a blog post; X's own composer stops at 25.
MAX_THREAD_POSTS = 25
MAX_CONTENT_WARNING_LENGTH = 1_000


def _utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


UtcDatetime = Annotated[datetime, PlainSerializer(_utc, return_type=str, when_used="json")]


def _not_a_number(value: object) -> object:
    """Pydantic also reads a number (or "0.5") as a Unix time; the API takes RFC 3339 only
    (schemathesis found ``scheduled_to=0.5`` accepted)."""
    if isinstance(value, int | float):
        raise ValueError("give an RFC 3339 date-time, e.g. 2026-12-01T09:00:00Z")
    if isinstance(value, str):
        try:
            float(value)
        except ValueError:
            return value
        raise ValueError("give an RFC 3339 date-time, e.g. 2026-12-01T09:00:00Z")
    return value


Rfc3339 = Annotated[datetime, BeforeValidator(_not_a_number)]


def _unique_accounts(targets: list[TargetIn]) -> list[TargetIn]:
    seen: set[uuid.UUID] = set()
    for target in targets:
        if target.account_id in seen:
            raise ValueError(f"account {target.account_id} is listed more than once")
        seen.add(target.account_id)
    return targets


class TargetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: uuid.UUID
    content: str | None = Field(
        default=None,
        max_length=MAX_CONTENT_LENGTH,
        description="Text for this account only; the post's content when absent.",
    )
    thread: list[Annotated[str, Field(min_length=1, max_length=MAX_CONTENT_LENGTH)]] = Field(
        default_factory=list,
        max_length=MAX_THREAD_POSTS,
        description="Further posts of a thread, each published as a reply to the one before "
        "(X, Bluesky). Platforms without threads refuse it.",
    )
    content_warning: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_CONTENT_WARNING_LENGTH,
        description="A warning shown in front of the text (Mastodon's spoiler text).",
    )
    visibility: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="Who may see the post, in the platform's words (Mastodon: public, "
        "unlisted, private, direct). Absent: the platform's public default.",
    )


def _unique_media(media_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    if len(set(media_ids)) < len(media_ids):
        raise ValueError("a picture is listed more than once")
    return media_ids


MediaIds = Annotated[
    list[uuid.UUID],
    Field(
        max_length=MAX_MEDIA,
        description="Pictures from POST /v1/media, attached in this order to every target.",
    ),
    AfterValidator(_unique_media),
]


Targets = Annotated[
    list[TargetIn],
    Field(min_length=1, max_length=MAX_TARGETS),
    AfterValidator(_unique_accounts),
]


class _Timing(BaseModel):
    scheduled_at: Rfc3339 | None = Field(
        default=None,
        description=(
            "When to publish: RFC 3339 with an offset (`2026-12-01T09:00:00+01:00`), or a "
            "local time without offset together with `timezone`."
        ),
    )
    timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA time zone (`Europe/Paris`) in which a local `scheduled_at` is read.",
        examples=["Europe/Paris"],
    )


class PostCreate(_Timing):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=MAX_CONTENT_LENGTH)
    media_ids: MediaIds = Field(default_factory=list)
    targets: Targets
    # Strict: pydantic would read 0 or "no" as false (schemathesis found "draft": 0 accepted).
    draft: StrictBool = Field(default=False, description="Save without scheduling.")

    @model_validator(mode="after")
    def _needs_time_unless_draft(self) -> PostCreate:
        if not self.draft and self.scheduled_at is None:
            raise ValueError("scheduled_at is required unless the post is a draft")
        return self


class PostValidate(_Timing):
    """A post to check without saving it; the time is optional."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=MAX_CONTENT_LENGTH)
    media_ids: MediaIds = Field(default_factory=list)
    targets: Targets


class PostValidation(BaseModel):
    valid: bool
    problems: list[FieldProblem] = Field(
        description="Each with a field path into the request and a message a person can act on."
    )


class PostUpdate(_Timing):
    """Fields present replace the post's; absent fields are kept."""

    model_config = ConfigDict(extra="forbid")

    content: str | None = Field(default=None, min_length=1, max_length=MAX_CONTENT_LENGTH)
    media_ids: MediaIds | None = None
    targets: Targets | None = None
    draft: StrictBool | None = None


class TargetRetry(BaseModel):
    """How to retry a target. An empty body, or none, is the same as every default."""

    model_config = ConfigDict(extra="forbid")

    accept_duplicate_risk: StrictBool = Field(
        default=False,
        description="Required to retry an `unknown` target: its earlier request may have been "
        "published, and sending it again could post it twice. Check the platform first.",
    )


class TargetOut(BaseModel):
    id: uuid.UUID
    account_id: uuid.UUID
    platform: str
    content: str | None = Field(description="The per-account override, if any.")
    thread: list[str]
    content_warning: str | None
    visibility: str | None
    status: TargetStatus
    attempts: int
    remote_id: str | None
    remote_url: str | None
    published_at: UtcDatetime | None
    next_attempt_at: UtcDatetime | None
    error_kind: str | None
    last_error: str | None


class PostOut(BaseModel):
    id: uuid.UUID
    content: str
    media_ids: list[uuid.UUID]
    scheduled_at: UtcDatetime | None
    timezone: str | None
    status: PostStatus
    revision: int = Field(description="Bumped by every change; send it back in If-Match.")
    targets: list[TargetOut]
    created_at: UtcDatetime
    updated_at: UtcDatetime


class PostSort(StrEnum):
    """The order of a list of posts. Ties (posts created or scheduled at the same instant) are
    broken by id, so a cursor pages on stably while posts are added."""

    CREATED_DESC = "-created_at"
    SCHEDULED_ASC = "scheduled_at"
    SCHEDULED_DESC = "-scheduled_at"


class PostPage(BaseModel):
    items: list[PostOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")

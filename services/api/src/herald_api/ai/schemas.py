"""What the AI endpoints accept and answer. Shapes are checked here, at the edge."""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, model_validator

from herald_api.ai.prompts.rewrite import Action
from herald_api.posts.schemas import MAX_TARGETS, UtcDatetime
from herald_api.problems import FieldProblem
from herald_common.platforms.registry import PLATFORM_NAMES

MAX_BRIEF_LENGTH = 4000
# What one rewrite sends the model: a long post or a short article, not a book.
MAX_REWRITE_LENGTH = 20_000
MAX_VARIANTS = 5
MAX_TONE_LENGTH = 100
# BCP 47 tags are short ("pt-BR"); names ("Brazilian Portuguese") are accepted too.
MAX_LANGUAGE_LENGTH = 64


def _known_platform(name: str) -> str:
    if name not in PLATFORM_NAMES:
        raise ValueError(f"unknown platform; one of {', '.join(PLATFORM_NAMES)}")
    return name


PlatformName = Annotated[
    str,
    AfterValidator(_known_platform),
    Field(json_schema_extra={"enum": list(PLATFORM_NAMES)}),
]


def _unique(values: list[uuid.UUID]) -> list[uuid.UUID]:
    if len(set(values)) != len(values):
        raise ValueError("an account is listed more than once")
    return values


Tone = Annotated[str, Field(min_length=1, max_length=MAX_TONE_LENGTH, examples=["friendly"])]
Language = Annotated[str, Field(min_length=2, max_length=MAX_LANGUAGE_LENGTH, examples=["fr"])]
AccountIds = Annotated[list[uuid.UUID], Field(max_length=MAX_TARGETS), AfterValidator(_unique)]


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    brief: str = Field(
        min_length=1, max_length=MAX_BRIEF_LENGTH, description="What the post is about."
    )
    link: AnyHttpUrl | None = Field(default=None, description="A link the post should carry.")
    tone: Tone | None = None
    language: Language | None = Field(default=None, description="Language to write in.")
    variants: int = Field(default=1, ge=1, le=MAX_VARIANTS, description="Variants per platform.")
    account_ids: AccountIds = Field(
        default_factory=list, description="Accounts the post is for (their platforms are used)."
    )
    platforms: list[PlatformName] = Field(
        default_factory=list,
        max_length=len(PLATFORM_NAMES),
        description="Platforms the post is for, besides those of `account_ids`.",
    )

    @model_validator(mode="after")
    def _needs_a_destination(self) -> GenerateRequest:
        if not self.account_ids and not self.platforms:
            raise ValueError("name the accounts or the platforms the post is for")
        return self


class Variant(BaseModel):
    text: str
    thread: list[str] = Field(description="Further posts of a thread (X, Bluesky).")
    valid: bool = Field(description="Whether the platform's own rules accept it as it is.")
    problems: list[FieldProblem] = Field(
        description="What the platform's rules still refuse (empty when valid)."
    )
    repaired: bool = Field(description="Rewritten once by the model to fix stated problems.")


class PlatformVariants(BaseModel):
    platform: str
    account_ids: list[uuid.UUID] = Field(description="The requested accounts on this platform.")
    variants: list[Variant]


class GenerateResult(BaseModel):
    model: str
    results: list[PlatformVariants]


class RewriteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=MAX_REWRITE_LENGTH)
    action: Action
    platform: PlatformName | None = Field(
        default=None,
        description="Whose rules the result must pass; required to shorten or split into a thread.",
    )
    language: Language | None = Field(
        default=None, description="Target language; required to translate."
    )

    @model_validator(mode="after")
    def _needs_what_the_action_needs(self) -> RewriteRequest:
        if self.action in (Action.SHORTEN, Action.SPLIT_THREAD) and self.platform is None:
            raise ValueError(f"{self.action.value} needs the platform to fit")
        if self.action == Action.TRANSLATE and self.language is None:
            raise ValueError("translate needs the language to translate into")
        return self


class RewriteResult(BaseModel):
    model: str
    action: Action
    platform: str | None
    text: str
    thread: list[str]
    valid: bool = Field(description="Whether the platform's rules accept it (true without one).")
    problems: list[FieldProblem]


class AltTextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    media_id: uuid.UUID = Field(description="A picture from POST /v1/media.")
    language: Language | None = None


class AltTextResult(BaseModel):
    model: str
    media_id: uuid.UUID
    alt_text: str


class CallerUsage(BaseModel):
    user_id: uuid.UUID | None = Field(description="The person who asked, if a person did.")
    api_key_id: uuid.UUID | None = Field(description="The API key that asked, if a key did.")
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    calls: int


class AiUsageReport(BaseModel):
    period_start: UtcDatetime
    resets_at: UtcDatetime = Field(description="When the monthly quota starts afresh.")
    quota_tokens: int
    used_tokens: int
    remaining_tokens: int
    callers: list[CallerUsage] = Field(description="Use this period, per person or API key.")


class BatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    plan: str = Field(
        min_length=1,
        max_length=MAX_BRIEF_LENGTH,
        examples=["Three posts a week for the next month about our spring sale"],
    )
    account_ids: Annotated[AccountIds, Field(min_length=1)]
    tone: Tone | None = None
    language: Language | None = None
    max_posts: int | None = Field(
        default=None,
        ge=1,
        description="The most drafts to make (at most HERALD_AI_BATCH_MAX_POSTS).",
    )


class BatchStatus(StrEnum):
    QUEUED = "queued"
    PLANNING = "planning"
    DRAFTING = "drafting"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ItemStatus(StrEnum):
    PLANNED = "planned"
    WRITTEN = "written"
    DRAFTED = "drafted"
    FAILED = "failed"


class WrittenText(BaseModel):
    account_id: uuid.UUID
    text: str
    thread: list[str]
    problems: list[FieldProblem]


class BatchItem(BaseModel):
    position: int
    brief: str
    suggested_at: UtcDatetime | None
    status: ItemStatus
    post_id: uuid.UUID | None = Field(description="The draft made from it, once drafted.")
    error: str | None
    written: list[WrittenText]


class Batch(BaseModel):
    id: uuid.UUID
    status: BatchStatus
    plan: str
    account_ids: list[uuid.UUID]
    max_posts: int
    total: int = Field(description="Posts the plan holds (0 until planned).")
    drafted: int
    failed: int
    items: list[BatchItem]
    error: str | None
    created_at: UtcDatetime
    finished_at: UtcDatetime | None

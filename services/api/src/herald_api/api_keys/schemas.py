"""API keys as the API shows them: the key itself only once, at creation."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from herald_api.posts.schemas import UtcDatetime
from herald_common.roles import ApiKeyScope


def _unique(scopes: list[ApiKeyScope]) -> list[ApiKeyScope]:
    return sorted(set(scopes))


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, examples=["CI publisher"])
    scopes: Annotated[
        list[ApiKeyScope],
        Field(min_length=1, max_length=2, description="`read`, `write` (write includes read)."),
        AfterValidator(_unique),
    ] = [ApiKeyScope.READ]


class ApiKeyOut(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str = Field(description="The key's first characters, to tell keys apart.")
    scopes: list[ApiKeyScope]
    created_by: uuid.UUID | None
    created_at: UtcDatetime
    last_used_at: UtcDatetime | None = Field(description="Recorded to the minute.")
    revoked_at: UtcDatetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The key itself. Shown this once: Herald keeps only a hash.")


class ApiKeyList(BaseModel):
    items: list[ApiKeyOut]

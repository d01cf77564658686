"""Social accounts as the API shows them: never with tokens."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from herald_api.posts.schemas import UtcDatetime
from herald_common.statuses import AccountStatus


class AccountCreate(BaseModel):
    """Add an account directly. Only the ``sandbox`` platform connects this way."""

    model_config = ConfigDict(extra="forbid")

    platform: Literal["sandbox"]
    handle: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    display_name: str | None = Field(default=None, max_length=200)


class AccountOut(BaseModel):
    id: uuid.UUID
    platform: str
    handle: str
    display_name: str | None
    status: AccountStatus
    created_at: UtcDatetime


class AccountList(BaseModel):
    items: list[AccountOut]

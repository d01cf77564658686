"""Workspaces, members and invitations as the API accepts and shows them."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

from herald_api.auth.schemas import Email, MembershipOut, Token
from herald_api.posts.schemas import UtcDatetime
from herald_common.roles import Role

WorkspaceName = Field(min_length=1, max_length=200)


class WorkspaceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = WorkspaceName


class WorkspaceUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = WorkspaceName


class WorkspaceOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: UtcDatetime


class WorkspaceList(BaseModel):
    items: list[MembershipOut]


class MemberOut(BaseModel):
    user_id: uuid.UUID
    email: str
    role: Role
    joined_at: UtcDatetime


class MemberList(BaseModel):
    items: list[MemberOut]


class MemberUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class InvitationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    role: Role = Role.EDITOR


class InvitationOut(BaseModel):
    id: uuid.UUID
    email: str
    role: Role
    created_at: UtcDatetime
    expires_at: UtcDatetime


class InvitationList(BaseModel):
    items: list[InvitationOut]


class InvitationAccept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token

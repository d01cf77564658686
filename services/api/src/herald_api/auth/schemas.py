"""What the sign-up, sign-in and account routes accept and answer."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, SecretStr

from herald_api.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from herald_api.posts.schemas import UtcDatetime
from herald_common.roles import Role

# RFC 5321's limit on a whole address.
MAX_EMAIL_LENGTH = 320
MAX_TOKEN_LENGTH = 2048


def _lower(email: str) -> str:
    return email.lower()


Email = Annotated[EmailStr, Field(max_length=MAX_EMAIL_LENGTH), AfterValidator(_lower)]
NewPassword = Annotated[
    SecretStr,
    Field(
        min_length=MIN_PASSWORD_LENGTH,
        max_length=MAX_PASSWORD_LENGTH,
        description=f"At least {MIN_PASSWORD_LENGTH} characters.",
    ),
]
AnyPassword = Annotated[SecretStr, Field(min_length=1, max_length=MAX_PASSWORD_LENGTH)]
Token = Annotated[str, Field(min_length=1, max_length=MAX_TOKEN_LENGTH)]


class SignUp(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: NewPassword
    workspace_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Name of the workspace made for you (you are its owner). Ignored with "
        "`invitation_token`, which joins the inviting workspace instead.",
    )
    invitation_token: Token | None = Field(
        default=None, description="Join the workspace that invited this email."
    )


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email
    password: AnyPassword


class Refresh(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Token


class TokenPair(BaseModel):
    access_token: str = Field(description="Send as `Authorization: Bearer <access_token>`.")
    refresh_token: str = Field(
        description="Exchange once at `POST /v1/auth/refresh` for a new pair; a second use "
        "of the same token ends the whole sign-in."
    )
    token_type: Literal["bearer"] = "bearer"  # noqa: S105  (the OAuth 2 token type)
    expires_in: int = Field(description="Seconds until the access token expires.")


class UserOut(BaseModel):
    id: uuid.UUID
    email: str
    email_verified: bool
    created_at: UtcDatetime


class MembershipOut(BaseModel):
    workspace_id: uuid.UUID
    workspace_name: str
    role: Role


class SignedUp(BaseModel):
    user: UserOut
    workspace: MembershipOut
    tokens: TokenPair


class Me(BaseModel):
    user: UserOut
    workspaces: list[MembershipOut]


class VerifyEmail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token
    new_password: NewPassword


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: AnyPassword
    new_password: NewPassword

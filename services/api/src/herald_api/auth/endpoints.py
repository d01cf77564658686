"""HTTP for accounts: sign-up, sign-in, tokens, passwords, email verification; thin."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response, status

from herald_api.auth import service
from herald_api.auth.schemas import (
    Login,
    Me,
    PasswordChange,
    PasswordReset,
    PasswordResetRequest,
    Refresh,
    SignedUp,
    SignUp,
    TokenPair,
    VerifyEmail,
)
from herald_api.auth.service import AuthContext
from herald_api.deps import CurrentUserDep, PostmanDep, ResourcesDep, SessionDep
from herald_api.problems import CONFLICT, FORBIDDEN, THROTTLED, Responses, problem_doc

router = APIRouter(prefix="/v1", tags=["auth"])
BAD_TOKEN: Responses = {400: problem_doc("The token is invalid, used or expired.")}


async def _context(
    request: Request, session: SessionDep, resources: ResourcesDep, postman: PostmanDep
) -> AuthContext:
    # The peer's address, or the client a proxy in HERALD_TRUSTED_PROXIES names in
    # X-Forwarded-For (edge.py); never a header from anyone else.
    client_ip = request.client.host if request.client else "unknown"
    return AuthContext(session, resources, postman, client_ip)


ContextDep = Annotated[AuthContext, Depends(_context)]
NO_CONTENT = status.HTTP_204_NO_CONTENT


@router.post(
    "/auth/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=SignedUp,
    responses={**CONFLICT, **THROTTLED, **BAD_TOKEN},
)
async def sign_up(ctx: ContextDep, data: SignUp) -> SignedUp:
    """Create an account and sign in. Makes a workspace you own, or joins the one whose
    invitation you bring; mails a link to confirm the address."""
    return await service.sign_up(ctx, data)


@router.post("/auth/login", response_model=TokenPair, responses=THROTTLED)
async def log_in(ctx: ContextDep, data: Login) -> TokenPair:
    """Sign in with email and password: a short-lived access token and a refresh token."""
    return await service.log_in(ctx, data)


@router.post("/auth/refresh", response_model=TokenPair)
async def refresh_tokens(ctx: ContextDep, data: Refresh) -> TokenPair:
    """Exchange a refresh token (once) for a new pair."""
    return await service.refresh(ctx, data.refresh_token)


@router.post("/auth/logout", status_code=NO_CONTENT, response_class=Response, responses=FORBIDDEN)
async def log_out(ctx: ContextDep, user: CurrentUserDep) -> None:
    """End this sign-in: its refresh token and access tokens stop working at once."""
    await service.log_out(ctx, user)


@router.post(
    "/auth/verify-email", status_code=NO_CONTENT, response_class=Response, responses=BAD_TOKEN
)
async def verify_email(ctx: ContextDep, data: VerifyEmail) -> None:
    """Confirm an email address with the token from the mailed link."""
    await service.verify_email(ctx, data.token)


@router.post(
    "/auth/verify-email/resend", status_code=status.HTTP_202_ACCEPTED, response_class=Response,
    responses=FORBIDDEN,
)  # fmt: skip
async def resend_verification_email(ctx: ContextDep, user: CurrentUserDep) -> None:
    """Mail the confirmation link again (nothing happens once the address is confirmed)."""
    await service.resend_verification(ctx, user)


@router.post(
    "/auth/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_class=Response,
    responses=THROTTLED,
)
async def request_password_reset(ctx: ContextDep, data: PasswordResetRequest) -> None:
    """Mail a reset link if the email has an account. The answer is the same either way."""
    await service.request_password_reset(ctx, data.email)


@router.post(
    "/auth/password-reset/confirm",
    status_code=NO_CONTENT,
    response_class=Response,
    responses=BAD_TOKEN,
)
async def reset_password(ctx: ContextDep, data: PasswordReset) -> None:
    """Set a new password with the mailed token; every sign-in of the account ends."""
    await service.reset_password(ctx, data)


@router.get("/me", response_model=Me, responses=FORBIDDEN)
async def get_me(ctx: ContextDep, user: CurrentUserDep) -> Me:
    """The signed-in user and their workspaces with their role in each."""
    return await service.me(ctx, user)


@router.post(
    "/me/password",
    status_code=NO_CONTENT,
    response_class=Response,
    responses={**FORBIDDEN, **THROTTLED},
)
async def change_password(ctx: ContextDep, user: CurrentUserDep, data: PasswordChange) -> None:
    """Change the password (the current one is required); other sign-ins end."""
    await service.change_password(ctx, user, data)

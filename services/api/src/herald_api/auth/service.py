"""What the account routes do: sign up, sign in, rotate refresh tokens, sign out, and
change, reset and verify. Each public function is one transaction, committed here."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from redis.asyncio import Redis
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from herald_api import emails
from herald_api.auth import repository, throttle
from herald_api.auth.permissions import CurrentUser
from herald_api.auth.schemas import (
    Login,
    Me,
    MembershipOut,
    PasswordChange,
    PasswordReset,
    SignedUp,
    SignUp,
    TokenPair,
    UserOut,
)
from herald_api.auth.throttle import Throttled
from herald_api.auth.tokens import (
    PASSWORD_RESET,
    REFRESH_TOKEN_PREFIX,
    VERIFY_EMAIL,
    InvalidToken,
    password_fingerprint,
    random_token,
    token_hash,
)
from herald_api.mail import Courier
from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_api.workspaces import repository as workspaces
from herald_common import clock
from herald_common.db.models import User
from herald_common.db.repositories.workspaces import create_workspace
from herald_common.logging import get_logger
from herald_common.roles import Role

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class AuthContext:
    session: AsyncSession
    resources: Resources
    postman: Courier
    client_ip: str

    @property
    def redis(self) -> Redis:
        return self.resources.redis


def _too_many(exc: Throttled) -> ProblemError:
    return ProblemError(
        429,
        "too-many-attempts",
        f"Too many attempts; try again in {exc.retry_after} seconds.",
        headers={"Retry-After": str(exc.retry_after)},
    )


def _invalid_token() -> ProblemError:
    return ProblemError(400, "invalid-token", "The link is invalid, used or expired.")


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.id,
        email=user.email,
        email_verified=user.email_verified_at is not None,
        created_at=user.created_at,
    )


async def _open_session(ctx: AuthContext, user_id: uuid.UUID) -> TokenPair:
    settings = ctx.resources.settings
    refresh_token = random_token(REFRESH_TOKEN_PREFIX)
    auth_session = await repository.open_session(
        ctx.session,
        user_id,
        clock.now() + timedelta(seconds=settings.refresh_token_ttl_seconds),
        token_hash(refresh_token),
    )
    return TokenPair(
        access_token=ctx.resources.tokens.access_token(user_id, auth_session.id),
        refresh_token=refresh_token,
        expires_in=settings.access_token_ttl_seconds,
    )


async def sign_up(ctx: AuthContext, data: SignUp) -> SignedUp:
    try:
        await throttle.check_signup(ctx.redis, ctx.resources.settings, ctx.client_ip)
    except Throttled as exc:
        raise _too_many(exc) from None
    password_hash = await ctx.resources.passwords.hash(data.password.get_secret_value())
    try:
        user = await repository.add_user(ctx.session, data.email, password_hash)
    except IntegrityError:
        raise ProblemError(
            409, "email-taken", "An account with this email exists; sign in instead."
        ) from None
    now = clock.now()
    if data.invitation_token is not None:
        invitation = await workspaces.take_invitation(
            ctx.session, token_hash(data.invitation_token), data.email, now
        )
        if invitation is None:
            raise ProblemError(
                400, "invalid-invitation", "The invitation is invalid, used or expired."
            )
        # The invitation reached this address, which proves it is theirs.
        user.email_verified_at = now
        workspace = await workspaces.get_workspace(ctx.session, invitation.workspace_id)
        assert workspace is not None  # the FK guarantees it
        role = Role(invitation.role)
    else:
        name = data.workspace_name or f"{data.email.split('@')[0]}'s workspace"
        workspace = await create_workspace(ctx.session, name)
        role = Role.OWNER
    await workspaces.add_membership(ctx.session, workspace.id, user.id, role)
    tokens = await _open_session(ctx, user.id)
    await ctx.session.commit()
    log.info("user signed up", user_id=str(user.id), workspace_id=str(workspace.id))
    if user.email_verified_at is None:
        _send_verification(ctx, user)
    return SignedUp(
        user=user_out(user),
        workspace=MembershipOut(
            workspace_id=workspace.id, workspace_name=workspace.name, role=role
        ),
        tokens=tokens,
    )


def _send_verification(ctx: AuthContext, user: User) -> None:
    token = ctx.resources.tokens.verify_email_token(user.id, user.email)
    ctx.postman.send(emails.verify_email(ctx.resources.settings, user.email, token))


async def log_in(ctx: AuthContext, data: Login) -> TokenPair:
    settings = ctx.resources.settings
    try:
        await throttle.check_login(ctx.redis, settings, ctx.client_ip, data.email)
    except Throttled as exc:
        raise _too_many(exc) from None
    user = await repository.get_user_by_email(ctx.session, data.email)
    password_hash = user.password_hash if user is not None else None
    if not await ctx.resources.passwords.verify(data.password.get_secret_value(), password_hash):
        locked = await throttle.record_failure(ctx.redis, settings, ctx.client_ip, data.email)
        if locked is not None and user is not None:
            log.warning("sign-in locked after failures", user_id=str(user.id), lockout=locked)
            ctx.postman.send(emails.lockout_notice(settings, user.email, locked))
        raise ProblemError(
            401,
            "invalid-credentials",
            "The email or the password is wrong.",
            headers={"WWW-Authenticate": "Bearer"},
        )
    assert user is not None
    await throttle.record_success(ctx.redis, settings, ctx.client_ip, data.email)
    tokens = await _open_session(ctx, user.id)
    await ctx.session.commit()
    log.info("user signed in", user_id=str(user.id))
    return tokens


async def refresh(ctx: AuthContext, refresh_token: str) -> TokenPair:
    """Exchange a refresh token for a new pair. A token used twice means two parties hold
    it: the whole session (every token descended from that login) is revoked."""
    now = clock.now()
    use = await repository.use_refresh_token(ctx.session, token_hash(refresh_token), now)
    auth_session = (
        None
        if use.session_id is None
        else await repository.live_session(ctx.session, use.session_id, now)
    )
    if use.reused and use.session_id is not None:
        await repository.revoke_session(ctx.session, use.session_id, "refresh-token-reuse", now)
        await ctx.session.commit()
        log.warning("refresh token reused; session revoked", session_id=str(use.session_id))
    if auth_session is None or use.reused:
        raise ProblemError(
            401,
            "invalid-refresh-token",
            "The refresh token is invalid, expired or already used; sign in again.",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        )
    next_token = random_token(REFRESH_TOKEN_PREFIX)
    await repository.add_refresh_token(ctx.session, auth_session.id, token_hash(next_token))
    await ctx.session.commit()
    return TokenPair(
        access_token=ctx.resources.tokens.access_token(auth_session.user_id, auth_session.id),
        refresh_token=next_token,
        expires_in=ctx.resources.settings.access_token_ttl_seconds,
    )


async def log_out(ctx: AuthContext, user: CurrentUser) -> None:
    await repository.revoke_session(ctx.session, user.session_id, "logout", clock.now())
    await ctx.session.commit()


async def me(ctx: AuthContext, current: CurrentUser) -> Me:
    user = await repository.get_user(ctx.session, current.user_id)
    if user is None:  # deleted after the token was issued
        raise ProblemError(401, "session-ended", "This sign-in has ended; sign in again.")
    return Me(
        user=user_out(user),
        workspaces=[
            MembershipOut(workspace_id=w.id, workspace_name=w.name, role=Role(role))
            for w, role in await workspaces.user_workspaces(ctx.session, user.id)
        ],
    )


async def change_password(ctx: AuthContext, current: CurrentUser, data: PasswordChange) -> None:
    """Needs the current password (a stolen access token alone cannot take the account);
    every other sign-in of the user ends."""
    user = await repository.get_user(ctx.session, current.user_id)
    if user is None:
        raise ProblemError(401, "session-ended", "This sign-in has ended; sign in again.")
    try:
        await throttle.check_login(ctx.redis, ctx.resources.settings, ctx.client_ip, user.email)
    except Throttled as exc:
        raise _too_many(exc) from None
    passwords = ctx.resources.passwords
    if not await passwords.verify(data.current_password.get_secret_value(), user.password_hash):
        await throttle.record_failure(ctx.redis, ctx.resources.settings, ctx.client_ip, user.email)
        raise ProblemError(403, "wrong-password", "The current password is wrong.")
    new_hash = await passwords.hash(data.new_password.get_secret_value())
    await repository.set_password(ctx.session, user, new_hash)
    await repository.revoke_user_sessions(
        ctx.session, user.id, "password-changed", clock.now(), keep=current.session_id
    )
    await ctx.session.commit()
    log.info("password changed", user_id=str(user.id))


async def resend_verification(ctx: AuthContext, current: CurrentUser) -> None:
    user = await repository.get_user(ctx.session, current.user_id)
    if user is not None and user.email_verified_at is None:
        _send_verification(ctx, user)


async def verify_email(ctx: AuthContext, token: str) -> None:
    try:
        claims = ctx.resources.tokens.read(token, VERIFY_EMAIL)
    except InvalidToken:
        raise _invalid_token() from None
    user = await repository.get_user(ctx.session, uuid.UUID(claims["sub"]))
    if user is None or user.email != claims.get("email"):
        raise _invalid_token()
    if user.email_verified_at is None:
        user.email_verified_at = clock.now()
        await ctx.session.commit()


async def request_password_reset(ctx: AuthContext, email: str) -> None:
    """Mails a reset link when the email has an account; answers the same either way."""
    try:
        await throttle.check_login(
            ctx.redis, ctx.resources.settings, ctx.client_ip, email, lockout=False
        )
    except Throttled as exc:
        raise _too_many(exc) from None
    user = await repository.get_user_by_email(ctx.session, email)
    if user is not None:
        token = ctx.resources.tokens.password_reset_token(user.id, user.password_hash)
        ctx.postman.send(emails.password_reset(ctx.resources.settings, user.email, token))


async def reset_password(ctx: AuthContext, data: PasswordReset) -> None:
    """Set a new password with a mailed token. Every sign-in ends, the lockout lifts, and the
    email counts as verified (the link reached it)."""
    try:
        claims = ctx.resources.tokens.read(data.token, PASSWORD_RESET)
    except InvalidToken:
        raise _invalid_token() from None
    user = await repository.get_user(ctx.session, uuid.UUID(claims["sub"]))
    if user is None or claims.get("pwd") != password_fingerprint(user.password_hash):
        raise _invalid_token()
    now = clock.now()
    new_hash = await ctx.resources.passwords.hash(data.new_password.get_secret_value())
    await repository.set_password(ctx.session, user, new_hash, verified_at=now)
    await repository.revoke_user_sessions(ctx.session, user.id, "password-reset", now)
    await ctx.session.commit()
    await throttle.unlock(ctx.redis, user.email)
    log.info("password reset", user_id=str(user.id))

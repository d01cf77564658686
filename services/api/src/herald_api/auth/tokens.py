"""The tokens Herald hands out, and how each is checked.

- Access tokens: short-lived JWTs (HS256) naming the user and their session.
- Email-link tokens (verify an email, reset a password): JWTs too, so they need no table.
  A reset token carries a fingerprint of the password hash it may replace, so it works
  once and dies with any password change.
- Refresh tokens and invitation tokens: random strings stored only as SHA-256, like API keys.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

from herald_common import clock
from herald_common.settings import Settings

ALGORITHM = "HS256"
# Prefixes and purposes, not secrets (ruff's S105 reads any *TOKEN* name as one).
REFRESH_TOKEN_PREFIX = "hr_"  # noqa: S105
INVITATION_TOKEN_PREFIX = "hi_"  # noqa: S105

ACCESS = "access"
VERIFY_EMAIL = "verify-email"
PASSWORD_RESET = "password-reset"  # noqa: S105


class InvalidToken(Exception):
    """Malformed, forged, expired or meant for something else: the caller learns no more."""


def random_token(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def password_fingerprint(password_hash: str) -> str:
    """Changes whenever the password does; reveals nothing about it."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:32]


class TokenSigner:
    def __init__(self, settings: Settings) -> None:
        self._key = OctKey.import_key(settings.jwt_signing_key.get_secret_value().encode())
        self._settings = settings

    def access_token(self, user_id: uuid.UUID, session_id: uuid.UUID) -> str:
        return self._sign(
            ACCESS,
            {"sub": str(user_id), "sid": str(session_id)},
            timedelta(seconds=self._settings.access_token_ttl_seconds),
        )

    def verify_email_token(self, user_id: uuid.UUID, email: str) -> str:
        return self._sign(
            VERIFY_EMAIL,
            {"sub": str(user_id), "email": email},
            timedelta(seconds=self._settings.email_verification_ttl_seconds),
        )

    def password_reset_token(self, user_id: uuid.UUID, password_hash: str) -> str:
        return self._sign(
            PASSWORD_RESET,
            {"sub": str(user_id), "pwd": password_fingerprint(password_hash)},
            timedelta(seconds=self._settings.password_reset_ttl_seconds),
        )

    def read(self, token: str, purpose: str) -> dict[str, Any]:
        """The claims of a valid, unexpired token made for ``purpose``; else InvalidToken."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[ALGORITHM])
            registry = jwt.JWTClaimsRegistry(
                now=lambda: int(clock.now().timestamp()),
                exp={"essential": True},
                sub={"essential": True},
                typ={"essential": True, "value": purpose},
            )
            registry.validate(decoded.claims)
            uuid.UUID(str(decoded.claims["sub"]))
        except (JoseError, ValueError, TypeError):
            raise InvalidToken(purpose) from None
        claims: dict[str, Any] = decoded.claims
        return claims

    def _sign(self, purpose: str, claims: dict[str, Any], ttl: timedelta) -> str:
        now = clock.now()
        return jwt.encode(
            {"alg": ALGORITHM},
            {**claims, "typ": purpose, "iat": _epoch(now), "exp": _epoch(now + ttl)},
            self._key,
            algorithms=[ALGORITHM],
        )


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())

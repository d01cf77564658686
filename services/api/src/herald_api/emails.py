"""The words of each email Herald sends about accounts. Links point at the web app
(``HERALD_PUBLIC_URL``), which posts the token back to the matching API route."""

from __future__ import annotations

from urllib.parse import urlencode

from herald_api.auth.throttle import Lockout
from herald_api.mail import Mail
from herald_common.settings import Settings


def _link(settings: Settings, path: str, token: str) -> str:
    return f"{settings.public_url.rstrip('/')}/{path}?{urlencode({'token': token})}"


def verify_email(settings: Settings, to: str, token: str) -> Mail:
    link = _link(settings, "verify-email", token)
    return Mail(
        to=to,
        subject="Confirm your email for Herald",
        body=f"Confirm this address by opening {link}\n\n"
        "The link is valid for "
        f"{settings.email_verification_ttl_seconds // 3600} hours. "
        "If you did not sign up for Herald, ignore this message.",
        link=link,
    )


def password_reset(settings: Settings, to: str, token: str) -> Mail:
    link = _link(settings, "reset-password", token)
    return Mail(
        to=to,
        subject="Reset your Herald password",
        body=f"Choose a new password at {link}\n\n"
        f"The link works once, for {settings.password_reset_ttl_seconds // 60} minutes. "
        "If you did not ask for it, ignore this message: your password is unchanged.",
        link=link,
    )


def invitation(settings: Settings, to: str, workspace_name: str, role: str, token: str) -> Mail:
    link = _link(settings, "accept-invitation", token)
    return Mail(
        to=to,
        subject=f"You are invited to {workspace_name} on Herald",
        body=f"You are invited to join {workspace_name} as {role}. Accept at {link}\n\n"
        f"The invitation is valid for {settings.invitation_ttl_seconds // 86400} days.",
        link=link,
    )


def lockout_notice(settings: Settings, to: str, lockout: Lockout) -> Mail:
    minutes = round(settings.lockout_seconds / 60)
    if lockout is Lockout.SOURCE:
        what = (
            f"There were {settings.lockout_threshold} failed attempts in a row to sign in to "
            "your Herald account from one address, so sign-in from that address is locked for "
            f"{minutes} minutes; you can still sign in from anywhere else."
        )
    else:
        what = (
            f"There were {settings.lockout_ceiling} failed attempts to sign in to your Herald "
            "account from many addresses, so for "
            f"{minutes} minutes it can be signed in to only from where you signed in before."
        )
    return Mail(
        to=to,
        subject="Sign-in to Herald locked after failed attempts",
        body=f"{what} If that was not you, reset your password: resetting also lifts the lock.",
    )

"""Connecting a LinkedIn member: OAuth 2.0 authorization code (3-legged OAuth,
learn.microsoft.com/linkedin/shared/authentication/authorization-code-flow) and Sign In with
LinkedIn using OpenID Connect for the profile.

- Herald's app: ``HERALD_LINKEDIN_CLIENT_ID`` and ``HERALD_LINKEDIN_CLIENT_SECRET`` (HTTP
  Basic at the token endpoint).
- Authorize at ``HERALD_LINKEDIN_AUTHORIZE_URL`` with ``HERALD_LINKEDIN_SCOPES`` (``openid
  profile`` to read who it is, ``w_member_social`` to post).
- Exchange the code and refresh at ``HERALD_LINKEDIN_TOKEN_URL``.
- Who: ``GET /v2/userinfo`` (OpenID Connect) on ``HERALD_LINKEDIN_API_BASE``; the handle is
  the email when granted, else the name.
- No revocation: LinkedIn offers none to ordinary apps.
"""

from __future__ import annotations

from herald_common.accounts.base import AppOAuthFlow, Profile, configured_client
from herald_common.accounts.errors import OAuthError
from herald_common.accounts.oauth import OAuthClient, read_with_token


class LinkedInOAuth(AppOAuthFlow):
    platform = "linkedin"

    def client(self) -> OAuthClient | None:
        settings = self.settings
        return configured_client(
            self.platform,
            settings.linkedin_client_id,
            settings.linkedin_client_secret,
            settings.linkedin_authorize_url,
            settings.linkedin_token_url,
            None,  # LinkedIn offers no revocation endpoint to ordinary apps.
            settings.linkedin_scopes,
        )

    async def read_profile(self, access_token: str) -> Profile:
        url = f"{self.settings.linkedin_api_base.rstrip('/')}/v2/userinfo"
        status, body = await read_with_token(self.http, self.platform, url, access_token)
        if status != 200:
            raise OAuthError("profile_unavailable", f"HTTP {status}", http_status=status)
        if not body.get("sub"):
            raise OAuthError("profile_unavailable", "no sub in /v2/userinfo")
        name = body.get("name") or " ".join(
            p for p in (body.get("given_name"), body.get("family_name")) if p
        )
        return Profile(
            str(body["sub"]), str(body.get("email") or name or body["sub"]), name or None
        )

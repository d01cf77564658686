"""Connecting an X account: OAuth 2.0 authorization code with PKCE
(docs.x.com/fundamentals/authentication/oauth-2-0/authorization-code).

- Herald's app: ``HERALD_X_CLIENT_ID`` (and ``HERALD_X_CLIENT_SECRET`` for a confidential
  client, which authenticates to the token endpoint with HTTP Basic).
- Authorize at ``HERALD_X_AUTHORIZE_URL`` (x.com/i/oauth2/authorize) with ``HERALD_X_SCOPES``;
  ``offline.access`` is what brings a refresh token, ``media.write`` lets Herald upload
  pictures.
- Exchange the code and refresh at ``HERALD_X_TOKEN_URL`` (api.x.com/2/oauth2/token). X rotates
  the refresh token with every refresh and revokes the old one (refresh.py stores the new one
  before anyone else may refresh).
- Who: ``GET /2/users/me`` on ``HERALD_X_API_BASE``.
- Revoke at ``HERALD_X_REVOKE_URL`` (RFC 7009), on disconnect.
"""

from __future__ import annotations

from herald_common.accounts.base import AppOAuthFlow, Profile, configured_client
from herald_common.accounts.errors import OAuthError
from herald_common.accounts.oauth import OAuthClient, read_with_token


class XOAuth(AppOAuthFlow):
    platform = "x"

    def client(self) -> OAuthClient | None:
        settings = self.settings
        return configured_client(
            self.platform,
            settings.x_client_id,
            settings.x_client_secret,
            settings.x_authorize_url,
            settings.x_token_url,
            settings.x_revoke_url,
            settings.x_scopes,
        )

    async def read_profile(self, access_token: str) -> Profile:
        url = f"{self.settings.x_api_base.rstrip('/')}/2/users/me"
        status, body = await read_with_token(self.http, self.platform, url, access_token)
        if status != 200:
            raise OAuthError("profile_unavailable", f"HTTP {status}", http_status=status)
        data = body.get("data") or {}
        if not data.get("id") or not data.get("username"):
            raise OAuthError("profile_unavailable", "no id or username in /2/users/me")
        return Profile(str(data["id"]), str(data["username"]), data.get("name"))

"""Connecting a Bluesky account: its handle and an app password, checked by logging in with
``com.atproto.server.createSession`` on its PDS (``pds_url``, else
``HERALD_BLUESKY_API_BASE``).

The app password is what is stored (encrypted): the adapter logs in with it when its session
tokens run out (platforms/bluesky_session.py), which a stored refresh JWT alone could not (it
expires in ~90 days). Nothing to refresh or revoke here: an app password is the person's to
revoke in their settings.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from herald_common.accounts.base import Connection, CredentialCheck, checked_address
from herald_common.accounts.errors import CredentialsRefused, platform_answer
from herald_common.http import json_object

PLATFORM = "bluesky"


class BlueskyCredentials(BaseModel):
    """A Bluesky handle and an app password (Settings > App passwords), never the account's
    main password. Checked with ``com.atproto.server.createSession``."""

    model_config = ConfigDict(extra="forbid", title="BlueskyCredentials")

    handle: str = Field(min_length=3, max_length=253, examples=["herald.bsky.social"])
    app_password: SecretStr = Field(min_length=1, max_length=200)
    pds_url: str | None = Field(
        default=None,
        max_length=500,
        pattern=r"^https?://[^\s/?#]+/?$",
        description="The account's PDS, when not the default (bsky.social).",
    )


class BlueskyAppPassword(CredentialCheck[BlueskyCredentials]):
    platform = PLATFORM
    body = BlueskyCredentials

    async def check(self, credentials: BlueskyCredentials) -> Connection:
        pds = (
            await checked_address(self.settings, "Bluesky PDS", credentials.pds_url)
            if credentials.pds_url
            else self.settings.bluesky_api_base.rstrip("/")
        )
        password = credentials.app_password.get_secret_value()
        response = await platform_answer(
            PLATFORM,
            self.http.post(
                f"{pds}/xrpc/com.atproto.server.createSession",
                json={"identifier": credentials.handle, "password": password},
            ),
        )
        session = json_object(response)
        if response.status_code != 200 or not session.get("did"):
            why = str(session.get("message") or f"HTTP {response.status_code}")
            raise CredentialsRefused(PLATFORM, why)
        return Connection(
            platform=PLATFORM,
            external_id=str(session["did"]),
            handle=str(session.get("handle") or credentials.handle),
            display_name=None,
            access_token=password,
            instance_url=pds if credentials.pds_url else None,
        )

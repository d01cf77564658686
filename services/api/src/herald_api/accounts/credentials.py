"""Connecting the platforms that take credentials instead of OAuth: each is checked against
the platform before it is stored (encrypted), and never logged."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import httpx

from herald_api.accounts.schemas import (
    BlueskyCredentials,
    ConnectCredentials,
    DiscordCredentials,
    MastodonCredentials,
    TelegramCredentials,
)
from herald_api.problems import ProblemError
from herald_api.resources import Resources
from herald_common import caller_urls
from herald_common.accounts import oauth
from herald_common.accounts.store import Connection
from herald_common.http import TRANSPORT_ERRORS

_EXPECTED: dict[str, type[Any]] = {
    "bluesky": BlueskyCredentials,
    "telegram": TelegramCredentials,
    "discord": DiscordCredentials,
    "mastodon": MastodonCredentials,
}
# ASCII only: Discord's ids are digits and its tokens base64url.
_WEBHOOK = re.compile(r"/api(?:/v\d+)?/webhooks/(?P<id>\d+)/(?P<token>[\w-]+)/?$", re.ASCII)


def refused(platform: str, why: str) -> ProblemError:
    return ProblemError(
        422, "credentials-refused", f"{platform} did not accept these credentials: {why}."
    )


def unreachable(platform: str) -> ProblemError:
    return ProblemError(502, "platform-unavailable", f"{platform} could not be reached; try again.")


async def checked_origin(resources: Resources, what: str, url: str) -> str:
    """A URL the caller chose (a PDS, a Mastodon instance), which Herald will fetch and send
    credentials to, as its normalised origin. Outside dev and test it must be https and
    resolve to public addresses only (herald_common.caller_urls: no SSRF into our network)."""
    try:
        return await caller_urls.checked_origin(
            url,
            environment=resources.settings.environment,
            resolve_within=resources.settings.http_timeout_seconds,
        )
    except caller_urls.RefusedURL as exc:
        raise ProblemError(422, "url-not-allowed", f"The {what} address {exc.reason}.") from None


async def _call(platform: str, request: Any) -> httpx.Response:
    try:
        response: httpx.Response = await request
    except TRANSPORT_ERRORS:
        raise unreachable(platform) from None
    except httpx.HTTPError:
        raise unreachable(platform) from None
    if response.status_code >= 500:
        raise unreachable(platform)
    return response


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


async def check(
    resources: Resources, platform: str, credentials: ConnectCredentials | None
) -> Connection:
    expected = _EXPECTED[platform]
    if not isinstance(credentials, expected):
        shape = expected.__name__
        if platform == "mastodon":
            shape = "MastodonInstance (OAuth) or MastodonCredentials"
        raise ProblemError(
            422, "wrong-credentials", f"{platform} accounts connect with a {shape} body."
        )
    if isinstance(credentials, BlueskyCredentials):
        return await _bluesky(resources, credentials)
    if isinstance(credentials, TelegramCredentials):
        return await _telegram(resources, credentials)
    if isinstance(credentials, DiscordCredentials):
        return await _discord(resources, credentials)
    assert isinstance(credentials, MastodonCredentials)
    return await _mastodon(resources, credentials)


async def _bluesky(resources: Resources, body: BlueskyCredentials) -> Connection:
    pds = (
        await checked_origin(resources, "Bluesky PDS", body.pds_url)
        if body.pds_url
        else resources.settings.bluesky_api_base.rstrip("/")
    )
    password = body.app_password.get_secret_value()
    response = await _call(
        "bluesky",
        resources.http.post(
            f"{pds}/xrpc/com.atproto.server.createSession",
            json={"identifier": body.handle, "password": password},
        ),
    )
    session = _json(response)
    if response.status_code != 200 or not session.get("did"):
        raise refused("bluesky", str(session.get("message") or f"HTTP {response.status_code}"))
    # The app password is kept (encrypted): the adapter logs in with it when its session
    # tokens run out, which a stored refresh JWT alone could not (it expires in ~90 days).
    return Connection(
        platform="bluesky",
        external_id=str(session["did"]),
        handle=str(session.get("handle") or body.handle),
        display_name=None,
        access_token=password,
        instance_url=pds if body.pds_url else None,
    )


async def _telegram(resources: Resources, body: TelegramCredentials) -> Connection:
    token = body.bot_token.get_secret_value()
    if not re.fullmatch(r"\d+:[\w-]+", token):
        raise refused("telegram", "a bot token looks like 123456:ABC-def")
    base = f"{resources.settings.telegram_api_base.rstrip('/')}/bot{token}"
    me = await _call("telegram", resources.http.get(f"{base}/getMe"))
    if me.status_code != 200 or not _json(me).get("ok"):
        raise refused("telegram", "the bot token is unknown or revoked")
    chat = await _call(
        "telegram", resources.http.get(f"{base}/getChat", params={"chat_id": body.chat_id})
    )
    found = _json(chat)
    if chat.status_code != 200 or not found.get("ok"):
        raise refused("telegram", "the bot cannot see this chat (add it to the chat first)")
    result = found.get("result") or {}
    username = result.get("username")
    title = result.get("title") or result.get("first_name")
    return Connection(
        platform="telegram",
        external_id=str(result.get("id") or body.chat_id),
        handle=f"@{username}" if username else str(title or body.chat_id),
        display_name=str(title) if title else None,
        access_token=token,
    )


async def _discord(resources: Resources, body: DiscordCredentials) -> Connection:
    url = body.webhook_url.get_secret_value().split("?", 1)[0]
    try:
        match = _WEBHOOK.search(urlsplit(url).path)
    except ValueError:  # not a URL at all (an unclosed IPv6 bracket, say)
        match = None
    if match is None:
        raise refused("discord", "a webhook URL looks like https://discord.com/api/webhooks/…")
    base = resources.settings.discord_api_base.rstrip("/")
    response = await _call(
        "discord", resources.http.get(f"{base}/api/webhooks/{match['id']}/{match['token']}")
    )
    webhook = _json(response)
    if response.status_code != 200 or not webhook.get("id"):
        raise refused("discord", "the webhook is unknown or was deleted")
    name = webhook.get("name")
    return Connection(
        platform="discord",
        external_id=str(webhook["id"]),
        handle=str(name or webhook["id"]),
        display_name=str(name) if name else None,
        access_token=url,
    )


async def _mastodon(resources: Resources, body: MastodonCredentials) -> Connection:
    """A pasted token (for instances where Herald cannot register its application). Herald
    cannot revoke it on disconnect: only the application that issued it can."""
    instance = await checked_origin(resources, "Mastodon instance", body.instance_url)
    token = body.access_token.get_secret_value()
    try:
        profile = await oauth.mastodon_profile(resources.http, instance, token)
    except oauth.OAuthUnavailable:
        raise unreachable("mastodon") from None
    except oauth.OAuthError as exc:
        raise refused("mastodon", exc.description or exc.error) from None
    return Connection(
        platform="mastodon",
        external_id=profile.external_id,
        handle=profile.handle,
        display_name=profile.display_name,
        access_token=token,
        instance_url=instance,
    )

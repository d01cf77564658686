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
from herald_common.accounts.store import Connection
from herald_common.http import TRANSPORT_ERRORS

_EXPECTED: dict[str, type[Any]] = {
    "bluesky": BlueskyCredentials,
    "telegram": TelegramCredentials,
    "discord": DiscordCredentials,
    "mastodon": MastodonCredentials,
}
_WEBHOOK = re.compile(r"/api(?:/v\d+)?/webhooks/(?P<id>\d+)/(?P<token>[\w-]+)")


def refused(platform: str, why: str) -> ProblemError:
    return ProblemError(
        422, "credentials-refused", f"{platform} did not accept these credentials: {why}."
    )


def unreachable(platform: str) -> ProblemError:
    return ProblemError(502, "platform-unavailable", f"{platform} could not be reached; try again.")


def _https_only(resources: Resources, platform: str, url: str) -> str:
    """A URL the caller chose (a PDS, a Mastodon instance) gets their token: outside dev and
    test it must be https, so the token never crosses the network in the clear."""
    if resources.settings.environment not in ("dev", "test") and not url.startswith("https://"):
        raise ProblemError(422, "insecure-url", f"The {platform} address must use https.")
    return url.rstrip("/")


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
        raise ProblemError(
            422,
            "wrong-credentials",
            f"{platform} accounts connect with a {expected.__name__} body.",
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
        _https_only(resources, "bluesky", body.pds_url)
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
        instance_url=body.pds_url.rstrip("/") if body.pds_url else None,
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
    match = _WEBHOOK.search(urlsplit(url).path)
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
    instance = _https_only(resources, "mastodon", body.instance_url)
    token = body.access_token.get_secret_value()
    response = await _call(
        "mastodon",
        resources.http.get(
            f"{instance}/api/v1/accounts/verify_credentials",
            headers={"Authorization": f"Bearer {token}"},
        ),
    )
    account = _json(response)
    if response.status_code != 200 or not account.get("id"):
        raise refused("mastodon", str(account.get("error") or f"HTTP {response.status_code}"))
    host = urlsplit(instance).netloc
    username = str(account.get("username") or account["id"])
    return Connection(
        platform="mastodon",
        # Account ids are per instance: the host keeps two instances' accounts apart.
        external_id=f"{account['id']}@{host}",
        handle=f"@{username}@{host}",
        display_name=account.get("display_name") or None,
        access_token=token,
        instance_url=instance,
    )

"""Discord: posting to a channel through one of its webhooks.

The account's access token is the webhook URL (``https://discord.com/api/webhooks/{id}/{token}``,
a secret: whoever has it can post). Only its ``{id}/{token}`` part is used, joined to the
``HERALD_DISCORD_API_BASE`` setting. Messages are sent with ``?wait=true`` so Discord answers
with the created message (and its id) instead of an empty 204.

Pictures travel in the same request (multipart/form-data: the message as ``payload_json``,
each picture a ``files[n]`` part that ``attachments[n]`` describes, its alt text as the
attachment's ``description``; discord.com/developers/docs/reference#uploading-files), so there
is no separate upload to remember or reuse.

Idempotency: none for webhooks (the ``nonce``/``enforce_nonce`` pair exists only for bots'
Create Message). A webhook can read back a message only by an id it already knows
(``GET /webhooks/{id}/{token}/messages/{message_id}``) and cannot list the channel, so
:meth:`Discord.find_published` cannot tell whether a lost request posted.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx

from herald_common import clock
from herald_common.http import (
    TRANSPORT_ERRORS,
    json_object,
    retry_after_seconds,
    transport_failure,
)
from herald_common.platforms.base import (
    ContentProblem,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
    media_problems,
    size_text,
    unsupported,
)
from herald_common.platforms.errors import (
    AuthExpired,
    CannotTell,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)

# Execute Webhook, "content": "the message contents (up to 2000 characters)". The docs do not
# say what a character is; Discord's API "calculates length based on the number of codepoints
# in the string" (it runs on Python 3: Discord staff in discord/discord-api-docs#1315), so
# Python's len() is Discord's count: an emoji outside the basic plane is 1, a family of four
# joined by zero width joiners is 7. A longer message gets 400 code 50035, BASE_TYPE_MAX_LENGTH
# "Must be 2000 or fewer in length."
MAX_CHARACTERS = 2000
# A message holds at most 10 attachments; an attachment's "description" (its alt text) is at
# most 1024 characters (resources/message, Attachment Object).
MAX_FILES = 10
MAX_ALT_TEXT = 1024
# reference#uploading-files: "The file upload size limit applies to each file in a request.
# The default limit is 20 MiB for all users" (raised from 10 MiB, the default from January
# 2025 to September 2026; webhooks get the default unless the server is boosted).
MAX_FILE_BYTES = 20 * 1024 * 1024
# resources/message, Create Message: "The maximum request size when sending a message is
# 25 MiB". The pictures may take all of it but room for the rest of the form: payload_json
# (2,000 characters of text, ten 1,024-character descriptions) and the part headers.
MAX_REQUEST_BYTES = 25 * 1024 * 1024
FORM_ALLOWANCE_BYTES = 64 * 1024
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif", "image/webp": "webp"}
DEFAULT_RETRY_AFTER_SECONDS = 2.0
_WEBHOOK = re.compile(r"(?:^|/api(?:/v\d+)?/webhooks/)(?P<id>\d+)/(?P<token>[\w-]+)/?$")
# Discord's "Unknown Webhook" (the webhook was deleted) and "Invalid Webhook Token" codes
# (discord.com/developers/docs/topics/opcodes-and-status-codes, JSON error codes).
_GONE_CODES = (10015, 50027)


class Discord(Platform):
    name = "discord"
    limits = (
        # Webhook execution is limited to 5 requests per 2 seconds per webhook (Discord staff
        # in discord/discord-api-docs#367; the X-RateLimit-* headers announce the same) ...
        RateLimit("webhook", capacity=5, per_seconds=2, scope="account"),
        # ... and to 30 messages per minute per channel, a limit the headers do not show
        # (same thread, and #1454: "a secondary hidden per-channel ratelimit").
        RateLimit("channel", capacity=30, per_seconds=60, scope="account"),
    )

    def validate(self, content: PostContent) -> list[ContentProblem]:
        problems = []
        if not content.text.strip() and not content.media:
            problems.append(
                ContentProblem("content", "A Discord message needs some text or a picture.")
            )
        if len(content.text) > MAX_CHARACTERS:
            problems.append(
                ContentProblem(
                    "content",
                    f"Discord allows {MAX_CHARACTERS} characters per message (each part of a "
                    f"joined emoji counts); this post has {len(content.text)}.",
                )
            )
        problems += media_problems(
            "Discord",
            content.media,
            max_count=MAX_FILES,
            max_bytes=MAX_FILE_BYTES,
            max_alt_text=MAX_ALT_TEXT,
        )
        total = sum(item.size_bytes for item in content.media)
        if total > MAX_REQUEST_BYTES - FORM_ALLOWANCE_BYTES:
            problems.append(
                ContentProblem(
                    "media_ids",
                    f"Discord takes at most {size_text(MAX_REQUEST_BYTES)} in one message; "
                    f"these pictures are {size_text(total)} together.",
                )
            )
        problems += unsupported(
            content,
            {
                "thread": "Discord webhooks have no threads; post one message.",
                "content_warning": "Discord has no content warnings.",
                "visibility": "A Discord message is seen by the channel.",
            },
        )
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        url = self._webhook_url(request)
        body = await _body(request)
        try:
            response = await self.http.post(url, params={"wait": "true"}, **body)
        except TRANSPORT_ERRORS as exc:
            # The URL is the secret: name the failure, never the URL.
            raise transport_failure(
                exc, "Discord", "the message", shown=type(exc).__name__
            ) from None
        _raise_for_error(response)
        message = json_object(response)
        if "id" not in message:
            raise OutcomeUnknown(
                "Discord accepted the message but its answer was unreadable",
                http_status=response.status_code,
            )
        guild_id, channel_id = message.get("guild_id"), message.get("channel_id")
        remote_url = (
            f"https://discord.com/channels/{guild_id}/{channel_id}/{message['id']}"
            if guild_id and channel_id
            else None
        )
        return Published(remote_id=str(message["id"]), remote_url=remote_url)

    async def find_published(self, request: PublishRequest) -> Published | None:
        raise CannotTell(
            "Discord webhooks cannot list a channel's messages, so Herald cannot check "
            "whether the message went out; look in the channel"
        )

    def _webhook_url(self, request: PublishRequest) -> str:
        secret = (request.account.access_token or "").split("?", 1)[0]
        match = _WEBHOOK.search(secret)
        if match is None:
            raise AuthExpired("Discord: the account has no usable webhook URL; reconnect it")
        base = self.settings.discord_api_base.rstrip("/")
        return f"{base}/api/webhooks/{match['id']}/{match['token']}"


async def _body(request: PublishRequest) -> dict[str, Any]:
    """The webhook's body as httpx keyword arguments: JSON for text alone, else multipart
    with the message in ``payload_json`` and each picture as ``files[n]``."""
    text, media = request.content.text, request.content.media
    if not media:
        return {"json": {"content": text}}
    pictures = await asyncio.gather(*(request.media_source.read(item.id) for item in media))
    attachments: list[dict[str, Any]] = []
    files = {}
    for n, (item, data) in enumerate(zip(media, pictures, strict=True)):
        filename = f"picture-{n + 1}.{_EXTENSIONS.get(item.content_type, 'png')}"
        attachment: dict[str, Any] = {"id": n, "filename": filename}
        if item.alt_text:
            attachment["description"] = item.alt_text
        attachments.append(attachment)
        files[f"files[{n}]"] = (filename, data, item.content_type)
    payload: dict[str, Any] = {"attachments": attachments}
    if text:
        payload["content"] = text
    return {"data": {"payload_json": json.dumps(payload, ensure_ascii=False)}, "files": files}


def _raise_for_error(response: httpx.Response) -> None:
    status = response.status_code
    if 200 <= status < 300:
        return
    body = json_object(response)
    message = str(body.get("message") or response.text.strip()[:200] or status)
    if status == 429:
        raise RateLimited(
            f"Discord rate limit{' (global)' if body.get('global') else ''}: {message}",
            retry_after=_retry_after(response, body.get("retry_after")),
            http_status=status,
        )
    if status in (401, 403) or (status == 404 and body.get("code") in _GONE_CODES):
        raise AuthExpired(f"Discord refused the webhook ({status}): {message}", http_status=status)
    if status >= 500 or status == 408:
        raise Transient(
            f"Discord answered {status}: {message}",
            http_status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), clock.now()),
        )
    raise Rejected(
        f"Discord rejected the message ({status}): {_details(body, message)}", http_status=status
    )


def _retry_after(response: httpx.Response, in_body: object) -> float:
    """Discord's wait: ``retry_after`` in the body (seconds, fractional), else the
    ``X-RateLimit-Reset-After`` or ``Retry-After`` header (docs: topics/rate-limits)."""
    if isinstance(in_body, int | float):
        return float(in_body)
    for header in ("X-RateLimit-Reset-After", "Retry-After"):
        wait = retry_after_seconds(response.headers.get(header), clock.now())
        if wait is not None:
            return wait
    return DEFAULT_RETRY_AFTER_SECONDS


def _details(body: dict[str, object], message: str) -> str:
    """Discord's validation errors come as ``{"content": ["Must be 2000 or fewer in length."]}``
    or ``{"code", "message", "errors": {...}}``; say what is wrong in one line."""
    field_errors = [
        f"{key}: {' '.join(str(v) for v in value)}"
        for key, value in body.items()
        if isinstance(value, list)
    ]
    return "; ".join(field_errors) or message

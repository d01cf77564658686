"""Telegram: a bot posting to a channel or group through the Bot API.

An account is a (bot, chat) pair: its access token is the bot token from @BotFather and its
``external_id`` the chat id (``-100...`` for channels and supergroups, or ``@channelname``).
Text goes out with ``sendMessage``. Pictures are uploaded in the same request that posts them
(multipart/form-data, core.telegram.org/bots/api#sending-files), so there is no separate upload
to remember or reuse: one picture with ``sendPhoto`` (the text as its caption), several with
``sendMediaGroup`` (an album: InputMediaPhoto items whose ``media`` is ``attach://<part>``,
the caption on the first). A GIF goes alone by ``sendAnimation`` so that it keeps moving: a
photo is always a still, and an album cannot hold animations ("type \"animation\" can't be
used in sendMediaGroup", tdlib/telegram-bot-api#315). WebP is refused: the Bot API's photo
processing does not reliably take it (tdlib turns .webp files into stickers; see
evgeny-nadymov/telegram-react#85).

Every answer is ``{"ok": true, "result": ...}`` or ``{"ok": false, "error_code",
"description", "parameters"}`` (core.telegram.org/bots/api, "Making requests").

Idempotency: none. The Bot API cannot list the messages a bot has sent (bots only receive
updates), so :meth:`Telegram.find_published` cannot tell whether a lost request posted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
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
    Media,
    Platform,
    PostContent,
    Published,
    PublishRequest,
    RateLimit,
    media_problems,
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
from herald_common.platforms.text import utf16_length

# Bot API sendMessage: "Text of the message to be sent, 1-4096 characters after entities
# parsing"; sendPhoto/sendMediaGroup: "Photo caption ..., 0-1024 characters". Telegram
# measures text in UTF-16 code units (its entity offsets are UTF-16 too), so an emoji outside
# the BMP costs 2.
MAX_TEXT = 4096
MAX_CAPTION = 1024
# sendMediaGroup: "an array describing messages to be sent, must include 2-10 items".
MAX_MEDIA = 10
# sendPhoto "photo": "The photo must be at most 10 MB in size. The photo's width and height
# must not exceed 10000 in total. Width and height ratio must be at most 20." (10 MB read as
# 10,000,000 bytes, the smaller of its two meanings.)
MAX_PHOTO_BYTES = 10_000_000
MAX_PHOTO_SIDES = 10_000
MAX_PHOTO_RATIO = 20
PHOTO_TYPES = ("image/jpeg", "image/png")
ANIMATION_TYPE = "image/gif"
# Telegram has long told a photo's format from its file name ("Photo has unsupported
# extension. Use one of .jpg, .jpeg, .gif, .png, .tif or .bmp"), so each part gets one.
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}
# When a 429 carries no parameters.retry_after.
DEFAULT_RETRY_AFTER_SECONDS = 30.0


class Telegram(Platform):
    name = "telegram"
    limits = (
        # core.telegram.org/bots/faq, "My bot is hitting limits": avoid more than about 30
        # messages per second in bulk per bot. An account is one bot and chat, so per account.
        RateLimit("messages", capacity=30, per_seconds=1, scope="account"),
        # Same FAQ: "your bot will not be able to send more than 20 messages per minute to
        # the same group"; python-telegram-bot's wiki notes it applies to channels as well.
        RateLimit("chat", capacity=20, per_seconds=60, scope="account"),
    )

    def validate(self, content: PostContent) -> list[ContentProblem]:
        problems = []
        limit = MAX_CAPTION if content.media else MAX_TEXT
        what = "a caption under pictures" if content.media else "a message"
        length = utf16_length(content.text)
        if not content.text.strip() and not content.media:
            problems.append(ContentProblem("content", "Telegram needs some text or a picture."))
        if length > limit:
            problems.append(
                ContentProblem(
                    "content",
                    f"Telegram allows {limit} characters in {what} (emoji and other symbols "
                    f"outside the basic plane count as 2); this post has {length}.",
                )
            )
        problems += picture_problems(content.media)
        problems += unsupported(
            content,
            {
                "thread": "Telegram has no threads; post it as one message.",
                "content_warning": "Telegram has no content warnings.",
                "visibility": "A Telegram post is seen by the chat's members.",
            },
        )
        return problems

    async def publish(self, request: PublishRequest) -> Published:
        token = request.account.access_token
        if not token:
            raise AuthExpired("Telegram: the account has no bot token; reconnect it")
        method, body = await _message(request)
        url = f"{self.settings.telegram_api_base.rstrip('/')}/bot{token}/{method}"
        try:
            response = await self.http.post(url, **body)
        except TRANSPORT_ERRORS as exc:
            # The URL holds the bot token: name the method, never the URL.
            raise transport_failure(exc, "Telegram", method, shown=type(exc).__name__) from None
        result = _result(response)
        message = result[0] if isinstance(result, list) and result else result
        if not isinstance(message, dict) or "message_id" not in message:
            raise OutcomeUnknown(
                f"Telegram accepted {method} but its answer was unreadable",
                http_status=response.status_code,
            )
        message_id = str(message["message_id"])
        chat = message.get("chat") if isinstance(message.get("chat"), dict) else {}
        return Published(remote_id=message_id, remote_url=_message_url(chat or {}, message_id))

    async def find_published(self, request: PublishRequest) -> Published | None:
        raise CannotTell(
            "Telegram bots cannot list the messages they sent, so Herald cannot check whether "
            "the message went out; look in the chat"
        )


def picture_problems(media: Sequence[Media]) -> list[ContentProblem]:
    """Telegram's rules for photos (and for a GIF, sent alone as an animation)."""
    problems = media_problems(
        "Telegram",
        media,
        max_count=MAX_MEDIA,
        max_bytes=MAX_PHOTO_BYTES,
        types=(*PHOTO_TYPES, ANIMATION_TYPE),
    )
    for i, item in enumerate(media):
        path = f"media_ids[{i}]"
        if item.width + item.height > MAX_PHOTO_SIDES:
            problems.append(
                ContentProblem(
                    path,
                    f"Telegram takes pictures whose width and height add up to at most "
                    f"{MAX_PHOTO_SIDES:,}; this one is {item.width} x {item.height}.",
                )
            )
        if max(item.width, item.height) > MAX_PHOTO_RATIO * min(item.width, item.height):
            problems.append(
                ContentProblem(
                    path,
                    f"Telegram takes pictures at most {MAX_PHOTO_RATIO} times as wide as high "
                    f"(or high as wide); this one is {item.width} x {item.height}.",
                )
            )
        if item.content_type == ANIMATION_TYPE and len(media) > 1:
            problems.append(
                ContentProblem(
                    path,
                    "Telegram sends a GIF as an animation, which an album of pictures cannot "
                    "hold; post the GIF on its own.",
                )
            )
    return problems


async def _message(request: PublishRequest) -> tuple[str, dict[str, Any]]:
    """The Bot API method for ``request`` and its body (keyword arguments for httpx)."""
    chat_id = request.account.external_id
    text, media = request.content.text, list(request.content.media)
    if not media:
        return "sendMessage", {"json": {"chat_id": chat_id, "text": text}}
    pictures = await asyncio.gather(*(request.media_source.read(item.id) for item in media))
    fields = {"chat_id": chat_id}
    if len(media) == 1:
        [item], [data] = media, pictures
        method, part = (
            ("sendAnimation", "animation")
            if item.content_type == ANIMATION_TYPE
            else ("sendPhoto", "photo")
        )
        if text:
            fields["caption"] = text
        return method, {"data": fields, "files": {part: _file(item, data, "picture")}}
    names = [f"picture{i}" for i in range(len(media))]
    items: list[dict[str, Any]] = [{"type": "photo", "media": f"attach://{n}"} for n in names]
    if text:
        items[0]["caption"] = text
    fields["media"] = json.dumps(items, ensure_ascii=False)
    files = {
        name: _file(item, data, name)
        for name, item, data in zip(names, media, pictures, strict=True)
    }
    return "sendMediaGroup", {"data": fields, "files": files}


def _file(item: Media, data: bytes, stem: str) -> tuple[str, bytes, str]:
    return (f"{stem}.{_EXTENSIONS.get(item.content_type, 'jpg')}", data, item.content_type)


def _message_url(chat: dict[str, Any], message_id: str) -> str | None:
    """t.me links: public chats by username; private supergroups and channels by id."""
    username = chat.get("username")
    if isinstance(username, str) and username:
        return f"https://t.me/{username}/{message_id}"
    chat_id = str(chat.get("id", ""))
    if chat_id.startswith("-100"):
        return f"https://t.me/c/{chat_id[4:]}/{message_id}"
    return None


def _result(response: httpx.Response) -> Any:
    body = json_object(response)
    status = response.status_code
    if 200 <= status < 300 and body.get("ok") is True:
        return body.get("result")
    error_code = body.get("error_code")
    code = error_code if isinstance(error_code, int) else status
    description = str(body.get("description") or response.reason_phrase or code)
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else {}
    if code == 429:
        retry_after = (parameters or {}).get("retry_after")
        raise RateLimited(
            f"Telegram flood control: {description}",
            retry_after=float(retry_after)
            if isinstance(retry_after, int | float)
            else DEFAULT_RETRY_AFTER_SECONDS,
            http_status=status,
        )
    if code in (401, 403, 404):
        # 401: the bot token was revoked; 403: the bot was removed from the chat or may not
        # post there; 404 is what the Bot API answers for a malformed token.
        raise AuthExpired(f"Telegram refused the bot: {description}", http_status=status)
    if code >= 500 or status >= 500:
        raise Transient(
            f"Telegram answered {code}: {description}",
            http_status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), clock.now()),
        )
    if 200 <= status < 300:
        raise OutcomeUnknown(
            f"Telegram answered {status} without ok: {description}", http_status=status
        )
    # 400: chat not found, message too long, wrong file id, chat migrated, ...
    raise Rejected(f"Telegram rejected the message: {description}", http_status=status)

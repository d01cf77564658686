"""The Telegram adapter against a scripted Bot API with its real envelope: ``{"ok": true,
"result": Message}`` or ``{"ok": false, "error_code", "description", "parameters"}``."""

from __future__ import annotations

from uuid import uuid4

import httpx
import pytest

from herald_common.platforms.base import AccountCredentials, PostContent, PublishRequest
from herald_common.platforms.errors import (
    AuthExpired,
    CannotTell,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.platforms.telegram import Telegram
from herald_common.settings import Settings
from tests.fakes.http import FakePlatform

TOKEN = "123456:ABC-DEF"
CHAT = "-1001234567890"


def message(message_id: int = 42, username: str | None = "heraldnews") -> dict[str, object]:
    chat: dict[str, object] = {"id": int(CHAT), "type": "channel", "title": "Herald"}
    if username:
        chat["username"] = username
    return {"message_id": message_id, "date": 1795400000, "chat": chat, "text": "hi"}


def ok(result: object) -> httpx.Response:
    return httpx.Response(200, json={"ok": True, "result": result})


def telegram_with(**handlers: object) -> tuple[Telegram, FakePlatform]:
    platform = FakePlatform(
        {("POST", f"/bot{TOKEN}/{method}"): handler for method, handler in handlers.items()}  # type: ignore[misc]
    )
    settings = Settings(environment="test", telegram_api_base="https://api.telegram.test")
    return Telegram(settings, platform.client()), platform


def publish_request(
    text: str = "Hello from Herald", media_ids: tuple[str, ...] = ()
) -> PublishRequest:
    return PublishRequest(
        account=AccountCredentials(
            account_id=uuid4(),
            workspace_id=uuid4(),
            external_id=CHAT,
            handle="Herald",
            access_token=TOKEN,
        ),
        content=PostContent(text, media_ids),
        idempotency_key="herald-1",
    )


async def test_text_goes_out_with_send_message() -> None:
    telegram, platform = telegram_with(sendMessage=lambda r: ok(message(42)))

    published = await telegram.publish(publish_request("Hello"))

    assert platform.requests[0].body == {"chat_id": CHAT, "text": "Hello"}
    assert published.remote_id == "42"
    assert published.remote_url == "https://t.me/heraldnews/42"


async def test_one_picture_goes_out_with_send_photo_and_a_caption() -> None:
    telegram, platform = telegram_with(sendPhoto=lambda r: ok(message(7, username=None)))

    published = await telegram.publish(publish_request("Look", media_ids=("AgACAgQ",)))

    assert platform.requests[0].body == {"chat_id": CHAT, "photo": "AgACAgQ", "caption": "Look"}
    assert published.remote_url == "https://t.me/c/1234567890/7"  # private channel link


async def test_several_pictures_go_out_as_a_media_group() -> None:
    telegram, platform = telegram_with(sendMediaGroup=lambda r: ok([message(8), message(9)]))

    published = await telegram.publish(publish_request("Album", media_ids=("a", "b")))

    assert platform.requests[0].body["media"] == [
        {"type": "photo", "media": "a", "caption": "Album"},
        {"type": "photo", "media": "b"},
    ]
    assert published.remote_id == "8"


def failure(code: int, description: str, **parameters: object) -> httpx.Response:
    body: dict[str, object] = {"ok": False, "error_code": code, "description": description}
    if parameters:
        body["parameters"] = parameters
    return httpx.Response(code, json=body)


async def test_flood_control_waits_the_announced_retry_after() -> None:
    telegram, _ = telegram_with(
        sendMessage=lambda r: failure(429, "Too Many Requests: retry after 35", retry_after=35)
    )

    with pytest.raises(RateLimited) as raised:
        await telegram.publish(publish_request())

    assert raised.value.retry_after == 35


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (failure(400, "Bad Request: chat not found"), Rejected),
        (failure(400, "Bad Request: message is too long"), Rejected),
        (failure(401, "Unauthorized"), AuthExpired),
        (failure(403, "Forbidden: bot was kicked from the channel chat"), AuthExpired),
        (failure(502, "Bad Gateway"), Transient),
        (httpx.Response(200, json={"ok": True, "result": True}), OutcomeUnknown),
    ],
)
async def test_errors_map_onto_the_failure_model(
    response: httpx.Response, error: type[Exception]
) -> None:
    telegram, _ = telegram_with(sendMessage=lambda r: response)

    with pytest.raises(error):
        await telegram.publish(publish_request())


async def test_a_lost_answer_is_outcome_unknown_and_never_names_the_token() -> None:
    telegram, platform = telegram_with(sendMessage=lambda r: ok(message()))
    platform.drop_next()

    with pytest.raises(OutcomeUnknown) as raised:
        await telegram.publish(publish_request())

    assert TOKEN not in raised.value.message
    assert raised.value.__cause__ is None  # the chained error would carry the URL


async def test_a_refused_connection_is_transient() -> None:
    telegram, platform = telegram_with(sendMessage=lambda r: ok(message()))
    platform.refuse_next()

    with pytest.raises(Transient):
        await telegram.publish(publish_request())


async def test_find_published_cannot_tell() -> None:
    telegram, platform = telegram_with()

    with pytest.raises(CannotTell):
        await telegram.find_published(publish_request())
    assert platform.requests == []


def test_validate_counts_utf16_units_and_the_caption_limit() -> None:
    telegram, _ = telegram_with()

    assert telegram.validate(PostContent("a" * 4096)) == []
    assert telegram.validate(PostContent("😀" * 2048)) == []
    [too_long] = telegram.validate(PostContent("😀" * 2049))
    assert "this post has 4098" in too_long.message
    [caption] = telegram.validate(PostContent("a" * 1025, ("photo",)))
    assert "1024 characters in a caption" in caption.message
    problems = telegram.validate(PostContent("a", tuple("x" * 11), thread=("b",)))
    assert [p.field for p in problems] == ["media_ids", "thread"]

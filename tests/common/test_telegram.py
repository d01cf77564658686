"""The Telegram adapter against a scripted Bot API with its real envelope: ``{"ok": true,
"result": Message}`` or ``{"ok": false, "error_code", "description", "parameters"}``. Pictures
arrive as multipart/form-data, which the fake reads the way the Bot API does."""

from __future__ import annotations

import json
from dataclasses import replace
from uuid import uuid4

import httpx
import pytest

from herald_common.platforms.base import (
    AccountCredentials,
    Media,
    PostContent,
    PublishRequest,
)
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
from tests.fakes.http import FakePlatform, Form, parse_form
from tests.fakes.media import MemoryMedia, image_bytes, media_of

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
    text: str = "Hello from Herald", media: MemoryMedia | None = None, *pictures: Media
) -> PublishRequest:
    request = PublishRequest(
        account=AccountCredentials(
            account_id=uuid4(),
            workspace_id=uuid4(),
            external_id=CHAT,
            handle="Herald",
            access_token=TOKEN,
        ),
        content=PostContent(text, media=pictures),
        idempotency_key="herald-1",
    )
    return replace(request, media_source=media) if media is not None else request


def photo_message(message_id: int, form_caption: str | None = None) -> dict[str, object]:
    """A channel message with a photo, as Telegram answers: the photo in several sizes."""
    sent = message(message_id, username=None)
    del sent["text"]
    sent["photo"] = [
        {"file_id": f"AgAD{message_id}s", "file_unique_id": "s", "width": 90, "height": 67},
        {"file_id": f"AgAD{message_id}m", "file_unique_id": "m", "width": 320, "height": 240},
    ]
    if form_caption:
        sent["caption"] = form_caption
    return sent


def one_photo(request: httpx.Request) -> httpx.Response:
    form = parse_form(request)
    if "photo" not in form.files:
        return failure(400, "Bad Request: there is no photo in the request")
    return ok(photo_message(7, form.fields.get("caption")))


def album(request: httpx.Request) -> httpx.Response:
    """sendMediaGroup as Telegram does it: every attach:// name must be a file part of the
    request, and the answer is one message per item, sharing a media_group_id."""
    form = parse_form(request)
    items = json.loads(form.fields["media"])
    if not 2 <= len(items) <= 10:
        return failure(400, "Bad Request: media must include 2-10 items")
    for number, item in enumerate(items, start=1):
        name = item["media"].removeprefix("attach://")
        if not item["media"].startswith("attach://") or name not in form.files:
            return failure(
                400,
                f"Bad Request: failed to send message #{number} with the error message "
                '"Wrong file identifier/HTTP URL specified"',
            )
    sent = [photo_message(20 + i, item.get("caption")) for i, item in enumerate(items)]
    for each in sent:
        each["media_group_id"] = "13750000000000001"
    return ok(sent)


def sent_form(platform: FakePlatform) -> Form:
    [received] = platform.requests
    assert isinstance(received.body, Form)
    return received.body


async def test_text_goes_out_with_send_message() -> None:
    telegram, platform = telegram_with(sendMessage=lambda r: ok(message(42)))

    published = await telegram.publish(publish_request("Hello"))

    assert platform.requests[0].body == {"chat_id": CHAT, "text": "Hello"}
    assert published.remote_id == "42"
    assert published.remote_url == "https://t.me/heraldnews/42"


async def test_one_picture_is_uploaded_with_send_photo_and_the_text_as_caption() -> None:
    telegram, platform = telegram_with(sendPhoto=one_photo)
    media = MemoryMedia()
    picture = media.add("image/jpeg", alt_text="Telegram has no alt text")

    published = await telegram.publish(publish_request("Look", media, picture))

    form = sent_form(platform)
    assert form.fields == {"chat_id": CHAT, "caption": "Look"}
    [(name, part)] = form.files.items()
    assert (name, part.filename, part.content_type) == ("photo", "picture.jpg", "image/jpeg")
    assert part.data == media.files[picture.id]
    assert published.remote_id == "7"
    assert published.remote_url == "https://t.me/c/1234567890/7"  # private channel link
    assert media.remembered == {}  # the upload is the post: nothing to reuse


async def test_several_pictures_go_out_as_an_album_with_the_caption_on_the_first() -> None:
    telegram, platform = telegram_with(sendMediaGroup=album)
    media = MemoryMedia()
    pictures = [media.add("image/png"), media.add("image/jpeg", width=30), media.add()]

    published = await telegram.publish(publish_request("Album", media, *pictures))

    form = sent_form(platform)
    assert form.fields["chat_id"] == CHAT
    items = json.loads(form.fields["media"])
    assert [item.get("caption") for item in items] == ["Album", None, None]
    assert {item["type"] for item in items} == {"photo"}
    uploaded = [form.files[item["media"].removeprefix("attach://")] for item in items]
    assert [part.data for part in uploaded] == [media.files[p.id] for p in pictures]
    assert [part.filename[-4:] for part in uploaded] == [".png", ".jpg", ".png"]
    assert published.remote_id == "20"  # the album's first message


async def test_a_gif_goes_alone_as_an_animation_so_it_keeps_moving() -> None:
    telegram, platform = telegram_with(
        sendAnimation=lambda r: ok(message(11) | {"animation": {"file_id": "CgAD"}})
    )
    media = MemoryMedia()
    gif = media.add("image/gif")

    await telegram.publish(publish_request("", media, gif))

    form = sent_form(platform)
    assert form.fields == {"chat_id": CHAT}  # no text, no caption
    assert form.files["animation"].data == media.files[gif.id]
    assert form.files["animation"].filename == "picture.gif"


async def test_a_picture_telegram_cannot_process_is_rejected() -> None:
    telegram, _ = telegram_with(
        sendPhoto=lambda r: failure(400, "Bad Request: IMAGE_PROCESS_FAILED")
    )
    media = MemoryMedia()

    with pytest.raises(Rejected) as raised:
        await telegram.publish(publish_request("Look", media, media.add()))

    assert "IMAGE_PROCESS_FAILED" in raised.value.message


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
    picture = media_of(image_bytes("image/jpeg"))
    [caption] = telegram.validate(PostContent("a" * 1025, (picture,)))
    assert "1024 characters in a caption" in caption.message
    problems = telegram.validate(PostContent("a", (picture,) * 11, thread=("b",)))
    assert [p.field for p in problems] == ["media_ids", "thread"]


def test_validate_holds_pictures_to_telegrams_photo_rules() -> None:
    telegram, _ = telegram_with()
    photo = media_of(image_bytes("image/png"))
    gif = media_of(image_bytes("image/gif"), "image/gif")
    assert telegram.validate(PostContent("", (photo,) * 10)) == []
    assert telegram.validate(PostContent("", (gif,))) == []

    cases: list[tuple[Media, str]] = [
        (replace(photo, size_bytes=10_000_001), "Telegram takes pictures up to 10 MB"),
        (media_of(image_bytes("image/webp"), "image/webp"), "Telegram takes JPEG, PNG, GIF"),
        (replace(photo, width=9000, height=1001), "add up to at most 10,000"),
        (replace(photo, width=2100, height=100), "at most 20 times as wide as high"),
        (gif, "an album of pictures cannot hold"),
    ]
    problems = telegram.validate(PostContent("", (photo, *(media for media, _ in cases))))
    assert [p.field for p in problems] == [f"media_ids[{i}]" for i in range(1, 6)]
    for problem, (_, expected) in zip(problems, cases, strict=True):
        assert expected in problem.message

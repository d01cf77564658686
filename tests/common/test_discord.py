"""The Discord adapter against a scripted webhook endpoint with Discord's shapes: the created
message for ``?wait=true``, 429 ``{"message", "retry_after", "global"}`` with rate-limit
headers, and JSON error codes. Pictures arrive as multipart/form-data, which the fake reads the
way Discord does."""

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
from herald_common.platforms.discord import Discord
from herald_common.platforms.errors import (
    AuthExpired,
    CannotTell,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.settings import Settings
from tests.fakes.http import FakePlatform, Form, answer, parse_form
from tests.fakes.media import MemoryMedia, image_bytes, media_of

PATH = "/api/webhooks/112233/tok-EN_123"
WEBHOOK_URL = f"https://discord.com{PATH}"
MESSAGE = {
    "id": "998877",
    "channel_id": "5544",
    "guild_id": "3322",
    "content": "hi",
    "webhook_id": "112233",
}


def discord_with(response: httpx.Response) -> tuple[Discord, FakePlatform]:
    platform = FakePlatform({("POST", PATH): lambda r: response})
    settings = Settings(environment="test", discord_api_base="https://discord.test")
    return Discord(settings, platform.client()), platform


def publish_request(
    text: str = "Hello from Herald", webhook: str | None = WEBHOOK_URL
) -> PublishRequest:
    return PublishRequest(
        account=AccountCredentials(
            account_id=uuid4(),
            workspace_id=uuid4(),
            external_id="112233",
            handle="#news",
            access_token=webhook,
        ),
        content=PostContent(text),
        idempotency_key="herald-1",
    )


def with_pictures(request: PublishRequest, media: MemoryMedia, *pictures: Media) -> PublishRequest:
    return replace(request, content=replace(request.content, media=pictures), media_source=media)


def message_with_files(request: httpx.Request) -> httpx.Response:
    """Execute Webhook with files, as Discord answers it: every attachment in payload_json
    must have its files[id] part (else 400 Invalid Form Body), and the created message lists
    the attachments with their descriptions."""
    form = parse_form(request)
    payload = json.loads(form.fields["payload_json"])
    attachments = []
    for n, described in enumerate(payload.get("attachments", [])):
        part = form.files.get(f"files[{described['id']}]")
        if part is None or part.filename != described["filename"]:
            return httpx.Response(
                400,
                json={
                    "code": 50035,
                    "message": "Invalid Form Body",
                    "errors": {
                        "attachments": {str(n): {"_errors": [{"code": "ATTACHMENT_NOT_FOUND"}]}}
                    },
                },
            )
        attachments.append(
            {
                "id": f"13000000000000000{n}",
                "filename": part.filename,
                "size": len(part.data),
                "content_type": part.content_type,
                "url": f"https://cdn.discordapp.com/attachments/5544/1300/{part.filename}",
            }
            | ({"description": described["description"]} if "description" in described else {})
        )
    return httpx.Response(
        200, json=MESSAGE | {"content": payload.get("content", ""), "attachments": attachments}
    )


def sent_form(platform: FakePlatform) -> Form:
    [received] = platform.requests
    assert isinstance(received.body, Form)
    return received.body


async def test_publish_executes_the_webhook_and_waits_for_the_message() -> None:
    discord, platform = discord_with(httpx.Response(200, json=MESSAGE))

    published = await discord.publish(publish_request("Hello"))

    [sent] = platform.requests
    assert sent.params == {"wait": "true"}
    assert sent.body == {"content": "Hello"}
    assert published.remote_id == "998877"
    assert published.remote_url == "https://discord.com/channels/3322/5544/998877"


async def test_pictures_go_in_the_same_request_with_their_alt_text_as_descriptions() -> None:
    platform = FakePlatform({("POST", PATH): message_with_files})
    discord = Discord(
        Settings(environment="test", discord_api_base="https://discord.test"), platform.client()
    )
    media = MemoryMedia()
    cat = media.add("image/webp", alt_text="A cat on a windowsill, ☀️")
    chart = media.add("image/png")

    published = await discord.publish(with_pictures(publish_request("Look"), media, cat, chart))

    form = sent_form(platform)
    assert platform.requests[0].params == {"wait": "true"}
    payload = json.loads(form.fields["payload_json"])
    assert payload == {
        "content": "Look",
        "attachments": [
            {"id": 0, "filename": "picture-1.webp", "description": "A cat on a windowsill, ☀️"},
            {"id": 1, "filename": "picture-2.png"},
        ],
    }
    assert form.files["files[0]"].data == media.files[cat.id]
    assert form.files["files[0]"].content_type == "image/webp"
    assert form.files["files[1]"].data == media.files[chart.id]
    assert published.remote_id == "998877"
    assert media.remembered == {}  # the upload is the message: nothing to reuse


async def test_pictures_over_the_servers_upload_limit_are_rejected() -> None:
    discord, _ = discord_with(
        httpx.Response(413, json={"message": "Request entity too large", "code": 40005})
    )
    media = MemoryMedia()

    with pytest.raises(Rejected) as raised:
        await discord.publish(with_pictures(publish_request(), media, media.add()))

    assert "Request entity too large" in raised.value.message


async def test_only_the_webhook_path_of_the_stored_url_is_used() -> None:
    hosts: list[str] = []

    def record_host(request: httpx.Request) -> httpx.Response:
        hosts.append(request.url.host)
        return httpx.Response(200, json=MESSAGE)

    platform = FakePlatform({("POST", PATH): record_host})
    discord = Discord(
        Settings(environment="test", discord_api_base="https://discord.test"), platform.client()
    )

    await discord.publish(
        publish_request(webhook="https://evil.example/api/webhooks/112233/tok-EN_123?x=1")
    )

    assert hosts == ["discord.test"]  # the configured base, never the stored URL's host


async def test_a_missing_webhook_is_auth_expired_without_a_request() -> None:
    discord, platform = discord_with(httpx.Response(200, json=MESSAGE))

    with pytest.raises(AuthExpired):
        await discord.publish(publish_request(webhook="not a webhook"))
    assert platform.requests == []


async def test_429_waits_the_announced_retry_after() -> None:
    discord, _ = discord_with(
        httpx.Response(
            429,
            json={"message": "You are being rate limited.", "retry_after": 1.337, "global": False},
            headers={
                "Retry-After": "2",
                "X-RateLimit-Reset-After": "1.337",
                "X-RateLimit-Scope": "shared",
            },
        )
    )

    with pytest.raises(RateLimited) as raised:
        await discord.publish(publish_request())

    assert raised.value.retry_after == pytest.approx(1.337)


async def test_429_without_a_body_uses_the_headers() -> None:
    discord, _ = discord_with(
        httpx.Response(429, text="<html>", headers={"X-RateLimit-Reset-After": "4.5"})
    )

    with pytest.raises(RateLimited) as raised:
        await discord.publish(publish_request())

    assert raised.value.retry_after == pytest.approx(4.5)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (
            httpx.Response(401, json={"message": "Invalid Webhook Token", "code": 50027}),
            AuthExpired,
        ),
        (httpx.Response(404, json={"message": "Unknown Webhook", "code": 10015}), AuthExpired),
        (httpx.Response(400, json={"content": ["Must be 2000 or fewer in length."]}), Rejected),
        (
            httpx.Response(400, json={"message": "Cannot send an empty message", "code": 50006}),
            Rejected,
        ),
        (httpx.Response(503, text="upstream connect error"), Transient),
        (httpx.Response(200, json={}), OutcomeUnknown),
    ],
)
async def test_errors_map_onto_the_failure_model(
    response: httpx.Response, error: type[Exception]
) -> None:
    discord, _ = discord_with(response)

    with pytest.raises(error):
        await discord.publish(publish_request())


async def test_validation_errors_say_what_is_wrong() -> None:
    discord, _ = discord_with(
        httpx.Response(400, json={"content": ["Must be 2000 or fewer in length."]})
    )

    with pytest.raises(Rejected) as raised:
        await discord.publish(publish_request())

    assert "content: Must be 2000 or fewer in length." in raised.value.message


async def test_a_lost_answer_is_outcome_unknown_and_never_names_the_webhook() -> None:
    discord, platform = discord_with(httpx.Response(200, json=MESSAGE))
    platform.drop_next()

    with pytest.raises(OutcomeUnknown) as raised:
        await discord.publish(publish_request())

    assert "tok-EN_123" not in raised.value.message and raised.value.__cause__ is None


async def test_a_refused_connection_is_transient() -> None:
    discord, platform = discord_with(httpx.Response(200, json=MESSAGE))
    platform.refuse_next()

    with pytest.raises(Transient):
        await discord.publish(publish_request())


async def test_find_published_cannot_tell() -> None:
    discord, platform = discord_with(httpx.Response(200, json=MESSAGE))

    with pytest.raises(CannotTell):
        await discord.find_published(publish_request())
    assert platform.requests == []


def test_validate() -> None:
    discord, _ = discord_with(answer(200)(httpx.Request("GET", "https://x")))

    assert discord.validate(PostContent("a" * 2000)) == []
    problems = discord.validate(PostContent("a" * 2001, content_warning="cw"))
    assert [p.field for p in problems] == ["content", "content_warning"]


def counted_like_discord(request: httpx.Request) -> httpx.Response:
    """Execute Webhook as Discord checks ``content``: at most 2,000 code points, else its
    Invalid Form Body."""
    content = json.loads(request.content)["content"]
    if len(content) > 2000:
        return httpx.Response(
            400,
            json={
                "message": "Invalid Form Body",
                "code": 50035,
                "errors": {
                    "content": {
                        "_errors": [
                            {
                                "code": "BASE_TYPE_MAX_LENGTH",
                                "message": "Must be 2000 or fewer in length.",
                            }
                        ]
                    }
                },
            },
        )
    return httpx.Response(200, json=MESSAGE | {"content": content})


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        ("😀" * 2000, True),  # one code point each (4,000 UTF-16 units)
        ("😀" * 2001, False),
        ("👨‍👩‍👧‍👦" * 285, True),  # seven code points each: 1,995
        ("👨‍👩‍👧‍👦" * 286, False),  # 2,002, though a reader sees 286
        ("e\u0301" * 1000, True),
        ("e\u0301" * 1001, False),
    ],
)
async def test_validate_counts_code_points_as_discord_does(text: str, allowed: bool) -> None:
    platform = FakePlatform({("POST", PATH): counted_like_discord})
    settings = Settings(environment="test", discord_api_base="https://discord.test")
    discord = Discord(settings, platform.client())

    assert (discord.validate(PostContent(text)) == []) is allowed
    if allowed:
        await discord.publish(publish_request(text))
    else:
        with pytest.raises(Rejected):
            await discord.publish(publish_request(text))


def test_validate_holds_pictures_to_discords_attachment_limits() -> None:
    discord, _ = discord_with(answer(200)(httpx.Request("GET", "https://x")))
    picture = media_of(image_bytes("image/gif"), "image/gif", alt_text="a" * 1024)
    assert discord.validate(PostContent("", (picture,) * 10)) == []  # no text is fine

    [too_many] = discord.validate(PostContent("hi", (picture,) * 11))
    assert (too_many.field, too_many.message) == (
        "media_ids",
        "Discord allows 10 pictures per post; this post has 11.",
    )
    cases: list[tuple[Media, str]] = [
        (replace(picture, size_bytes=20 * 1024 * 1024 + 1), "Discord takes pictures up to 20 MiB"),
        (replace(picture, alt_text="a" * 1025), "Discord allows 1024 characters of alt text"),
        (replace(picture, content_type="image/tiff"), "Discord takes JPEG, PNG, GIF, WEBP"),
    ]
    problems = discord.validate(PostContent("hi", tuple(media for media, _ in cases)))
    assert [p.field for p in problems] == ["media_ids[0]", "media_ids[1]", "media_ids[2]"]
    for problem, (_, expected) in zip(problems, cases, strict=True):
        assert problem.message.startswith(expected)

    nine_mb = replace(picture, size_bytes=9 * 1024 * 1024)
    [together] = discord.validate(PostContent("hi", (nine_mb,) * 3))
    assert together.field == "media_ids"
    assert together.message == (
        "Discord takes at most 25 MiB in one message; these pictures are 27 MiB together."
    )

"""The X adapter against a scripted X API that answers with X's real shapes: ``201
{"data": {"id", "text"}}``, ``200 {"data": {"id", "media_key", "size", "expires_after_secs"}}``
for a picture, problem JSON errors, ``x-rate-limit-*`` headers in epoch seconds."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from typing import Any
from uuid import uuid4

import httpx
import pytest

from herald_common import clock
from herald_common.platforms.base import (
    AccountCredentials,
    ContentProblem,
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
from herald_common.platforms.x import X
from herald_common.settings import Settings
from tests.fakes.http import FakePlatform, answer, form_fields
from tests.fakes.media import MemoryMedia

USER_ID = "2244994945"
# twitter-text's invalidCharsGroup.
INVALID_CHARACTERS = ("\ufffe", "\ufeff", "\uffff")


def problem(status: int, title: str, detail: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"title": title, "detail": detail, "type": "about:blank", "status": status},
        headers=headers,
    )


class FakeX:
    """Posts and uploaded pictures are stored; ``GET /2/users/:id/tweets`` lists posts newest
    first, with links rewritten to t.co, ``&`` escaped and a link to the pictures appended, as
    X does. A post may only attach pictures that were uploaded."""

    def __init__(self) -> None:
        self.posts: list[dict[str, Any]] = []
        # media id -> the fields of its upload (``media`` bytes, ``media_category``, ...)
        self.uploads: dict[str, dict[str, bytes]] = {}
        self.alt_texts: dict[str, str] = {}
        self.platform = FakePlatform(
            {
                ("POST", "/2/tweets"): self.create,
                ("POST", "/2/media/upload"): self.upload,
                ("POST", "/2/media/metadata"): self.metadata,
                ("GET", f"/2/users/{USER_ID}/tweets"): self.timeline,
            }
        )

    def create(self, request: httpx.Request) -> httpx.Response:
        body = self.platform.requests[-1].body
        if any(character in body["text"] for character in INVALID_CHARACTERS):
            # twitter-text calls such a post invalid; X refuses it as an invalid request.
            return problem(
                400, "Invalid Request", "One or more parameters to your request was invalid."
            )
        media_ids = body.get("media", {}).get("media_ids", [])
        if any(m not in self.uploads for m in media_ids):
            return problem(400, "Invalid Request", "Your media IDs are invalid.")
        post = {
            "id": str(1_860_000_000_000_000_000 + len(self.posts)),
            "text": body["text"],
            "media_ids": media_ids,
        }
        self.posts.append(post)
        return httpx.Response(201, json={"data": {"id": post["id"], "text": post["text"]}})

    def upload(self, request: httpx.Request) -> httpx.Response:
        fields = form_fields(self.platform.requests[-1])
        media_id = str(1_870_000_000_000_000_000 + len(self.uploads))
        self.uploads[media_id] = fields
        return httpx.Response(
            200,
            json={
                "data": {
                    "id": media_id,
                    "media_key": f"3_{media_id}",
                    "size": len(fields["media"]),
                    "expires_after_secs": 86400,
                }
            },
        )

    def metadata(self, request: httpx.Request) -> httpx.Response:
        body = self.platform.requests[-1].body
        self.alt_texts[body["id"]] = body["metadata"]["alt_text"]["text"]
        return httpx.Response(
            200,
            json={"data": {"id": body["id"], "associated_metadata": body["metadata"]}},
        )

    def timeline(self, request: httpx.Request) -> httpx.Response:
        shown = [
            {
                "id": p["id"],
                "text": (
                    p["text"]
                    .replace("&", "&amp;")
                    .replace("https://example.com/long/path", "https://t.co/AbCdEf123")
                    + (" https://t.co/PiCtUrE42" if p["media_ids"] else "")
                ).strip(),
            }
            for p in reversed(self.posts)
        ]
        return httpx.Response(200, json={"data": shown, "meta": {"result_count": len(shown)}})


@pytest.fixture
def fake() -> FakeX:
    return FakeX()


@pytest.fixture
def x(fake: FakeX) -> X:
    settings = Settings(environment="test", x_api_base="https://api.x.test")
    return X(settings, fake.platform.client())


def publish_request(
    text: str = "Hello from Herald", media_source: MemoryMedia | None = None, **content: object
) -> PublishRequest:
    return PublishRequest(
        account=AccountCredentials(
            account_id=uuid4(),
            workspace_id=uuid4(),
            external_id=USER_ID,
            handle="herald",
            access_token="user-token",
        ),
        content=PostContent(text, **content),  # type: ignore[arg-type]  # test shorthand
        idempotency_key="herald-1",
        media_source=media_source or MemoryMedia(),
    )


async def test_publish_posts_with_the_users_token(x: X, fake: FakeX) -> None:
    published = await x.publish(publish_request("Hello & welcome"))

    [sent] = fake.platform.received("/2/tweets")
    assert sent.headers["authorization"] == "Bearer user-token"
    assert sent.body == {"text": "Hello & welcome"}
    assert published.remote_id == fake.posts[0]["id"]
    assert published.remote_url == f"https://x.com/herald/status/{published.remote_id}"


async def test_pictures_are_uploaded_with_their_alt_text_and_attached_in_order(
    x: X, fake: FakeX
) -> None:
    source = MemoryMedia()
    first = source.add("image/jpeg", alt_text="A red square")
    second = source.add("image/webp")

    await x.publish(publish_request("Look", source, media=(first, second)))

    uploads = fake.platform.received("/2/media/upload")
    assert [u.headers["authorization"] for u in uploads] == ["Bearer user-token"] * 2
    assert [f["media"] for f in fake.uploads.values()] == [
        source.files[first.id],
        source.files[second.id],
    ]
    assert {f["media_category"] for f in fake.uploads.values()} == {b"tweet_image"}
    [first_id, second_id] = fake.uploads
    assert fake.alt_texts == {first_id: "A red square"}
    [sent] = fake.platform.received("/2/tweets")
    assert sent.body["media"] == {"media_ids": [first_id, second_id]}
    assert source.remembered == {first.id: first_id, second.id: second_id}


async def test_a_threads_pictures_go_on_its_first_post_only(x: X, fake: FakeX) -> None:
    source = MemoryMedia()
    picture = source.add()

    await x.publish(publish_request("1/2", source, media=(picture,), thread=("2/2",)))

    bodies = [r.body for r in fake.platform.received("/2/tweets")]
    assert bodies[0]["media"] == {"media_ids": list(fake.uploads)}
    assert "media" not in bodies[1]


async def test_a_retry_reuses_what_an_earlier_attempt_uploaded(x: X, fake: FakeX) -> None:
    source = MemoryMedia()
    picture = source.add(alt_text="reused")
    fake.uploads["1870000000000000099"] = {}  # what the earlier attempt uploaded

    await x.publish(
        replace(
            publish_request("Again", source, media=(picture,)),
            uploaded={picture.id: "1870000000000000099"},
        )
    )

    assert fake.platform.received("/2/media/upload") == []
    assert fake.platform.received("/2/media/metadata") == []
    assert source.reads == []
    [sent] = fake.platform.received("/2/tweets")
    assert sent.body["media"] == {"media_ids": ["1870000000000000099"]}


async def test_an_upload_is_remembered_before_the_post_is_created(fake: FakeX) -> None:
    fake.platform.handlers = {
        **fake.platform.handlers,
        ("POST", "/2/tweets"): answer(503, {"title": "Service Unavailable", "status": 503}),
    }
    x = X(Settings(environment="test", x_api_base="https://api.x.test"), fake.platform.client())
    source = MemoryMedia()
    picture = source.add()

    with pytest.raises(Transient):
        await x.publish(publish_request("Hello", source, media=(picture,)))

    assert source.remembered == {picture.id: next(iter(fake.uploads))}


def x_uploads_answering(response: httpx.Response) -> tuple[X, FakeX]:
    fake = FakeX()
    fake.platform.handlers = {
        **fake.platform.handlers,
        ("POST", "/2/media/upload"): lambda r: response,
    }
    return X(
        Settings(environment="test", x_api_base="https://api.x.test"), fake.platform.client()
    ), fake


async def test_an_upload_429_waits_for_the_reset_and_posts_nothing() -> None:
    reset = clock.now().timestamp() + 600
    x, fake = x_uploads_answering(
        problem(
            429,
            "Too Many Requests",
            "Too Many Requests",
            **{"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(reset))},
        )
    )
    source = MemoryMedia()

    with pytest.raises(RateLimited) as raised:
        await x.publish(publish_request("Hello", source, media=(source.add(),)))

    assert 590 < raised.value.retry_after <= 600
    assert fake.posts == []
    assert source.remembered == {}


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (problem(401, "Unauthorized", "Unauthorized"), AuthExpired),
        # A token from before Herald asked for media.write: reconnecting is the cure.
        (problem(403, "Forbidden", "You are not permitted to perform this action."), AuthExpired),
        (
            httpx.Response(
                400,
                json={
                    "errors": [{"message": "media type unrecognized.", "code": 324}],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            ),
            Rejected,
        ),
        (problem(503, "Service Unavailable", "Service Unavailable"), Transient),
        # An upload that may have landed is a stray picture on X, not a second post.
        (problem(504, "Gateway Timeout", "Gateway Timeout"), Transient),
    ],
)
async def test_upload_errors_map_onto_the_failure_model(
    response: httpx.Response, error: type[Exception]
) -> None:
    x, fake = x_uploads_answering(response)
    source = MemoryMedia()

    with pytest.raises(error):
        await x.publish(publish_request("Hello", source, media=(source.add(),)))

    assert fake.posts == []


async def test_an_upload_dropped_after_sending_is_transient(x: X, fake: FakeX) -> None:
    source = MemoryMedia()
    fake.platform.drop_next()

    with pytest.raises(Transient):
        await x.publish(publish_request("Hello", source, media=(source.add(),)))

    assert len(fake.uploads) == 1  # it did arrive
    assert fake.posts == []
    assert source.remembered == {}


async def test_a_thread_is_posted_as_replies(x: X, fake: FakeX) -> None:
    published = await x.publish(publish_request("1/3", thread=("2/3", "3/3")))

    bodies = [r.body for r in fake.platform.received("/2/tweets")]
    ids = [p["id"] for p in fake.posts]
    assert [b["text"] for b in bodies] == ["1/3", "2/3", "3/3"]
    assert "reply" not in bodies[0]
    assert bodies[1]["reply"] == {"in_reply_to_tweet_id": ids[0]}
    assert bodies[2]["reply"] == {"in_reply_to_tweet_id": ids[1]}
    assert published.remote_id == ids[0]


async def test_a_thread_cut_short_is_outcome_unknown_naming_what_went_out(fake: FakeX) -> None:
    calls = iter([fake.create, answer(503, {"title": "Service Unavailable", "status": 503})])
    fake.platform.handlers = {("POST", "/2/tweets"): lambda r: next(calls)(r)}
    x = X(Settings(environment="test", x_api_base="https://api.x.test"), fake.platform.client())

    with pytest.raises(OutcomeUnknown) as raised:
        await x.publish(publish_request("1/2", thread=("2/2",)))

    assert fake.posts[0]["id"] in raised.value.message


def x_answering(response: httpx.Response) -> X:
    platform = FakePlatform({("POST", "/2/tweets"): lambda r: response})
    return X(Settings(environment="test", x_api_base="https://api.x.test"), platform.client())


async def test_429_waits_until_the_spent_windows_reset() -> None:
    now = clock.now().timestamp()
    x = x_answering(
        problem(
            429,
            "Too Many Requests",
            "Too Many Requests",
            **{
                "x-rate-limit-limit": "100",
                "x-rate-limit-remaining": "57",
                "x-rate-limit-reset": str(int(now + 300)),
                "x-user-limit-24hour-limit": "1000",
                "x-user-limit-24hour-remaining": "0",
                "x-user-limit-24hour-reset": str(int(now + 7200)),
            },
        )
    )

    with pytest.raises(RateLimited) as raised:
        await x.publish(publish_request())

    # The 24-hour user cap is spent; the 15-minute window is not.
    assert 7100 < raised.value.retry_after <= 7200


async def test_429_without_spent_families_uses_the_endpoint_window() -> None:
    reset = clock.now().timestamp() + 120
    x = x_answering(problem(429, "Too Many Requests", "x", **{"x-rate-limit-reset": str(reset)}))

    with pytest.raises(RateLimited) as raised:
        await x.publish(publish_request())

    assert 110 < raised.value.retry_after <= 120


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (problem(401, "Unauthorized", "Unauthorized"), AuthExpired),
        (problem(503, "Service Unavailable", "Service Unavailable"), Transient),
        (problem(504, "Gateway Timeout", "Gateway Timeout"), OutcomeUnknown),
        (
            httpx.Response(
                400,
                json={
                    "errors": [{"message": "text is too long", "parameters": {"text": ["…"]}}],
                    "title": "Invalid Request",
                    "detail": "One or more parameters to your request was invalid.",
                    "type": "https://api.twitter.com/2/problems/invalid-request",
                },
            ),
            Rejected,
        ),
        (problem(403, "Forbidden", "You are not permitted to perform this action."), Rejected),
        (
            problem(
                403, "Forbidden", "You are not allowed to create a Tweet with duplicate content."
            ),
            OutcomeUnknown,
        ),
    ],
)
async def test_errors_map_onto_the_failure_model(
    response: httpx.Response, error: type[Exception]
) -> None:
    with pytest.raises(error):
        await x_answering(response).publish(publish_request())


async def test_connection_dropped_after_sending_is_outcome_unknown(x: X, fake: FakeX) -> None:
    fake.platform.drop_next()

    with pytest.raises(OutcomeUnknown):
        await x.publish(publish_request())

    assert len(fake.posts) == 1  # it did arrive


async def test_connection_refused_is_transient(x: X, fake: FakeX) -> None:
    fake.platform.refuse_next()

    with pytest.raises(Transient):
        await x.publish(publish_request())

    assert fake.posts == []


async def test_no_token_is_auth_expired_without_a_request(x: X, fake: FakeX) -> None:
    request = publish_request()
    with pytest.raises(AuthExpired):
        await x.publish(replace(request, account=replace(request.account, access_token=None)))
    assert fake.platform.requests == []


async def test_find_published_matches_the_text_as_x_returns_it(x: X, fake: FakeX) -> None:
    request = publish_request("Read & share https://example.com/long/path")
    sent_at = clock.now()
    fake.platform.drop_next()
    with pytest.raises(OutcomeUnknown):
        await x.publish(request)

    found = await x.find_published(replace(request, first_attempt_at=sent_at))

    assert found is not None and found.remote_id == fake.posts[0]["id"]
    [lookup] = fake.platform.received(f"/2/users/{USER_ID}/tweets")
    assert lookup.params["exclude"] == "retweets"
    assert lookup.params["start_time"] == (sent_at - timedelta(minutes=5)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


async def test_find_published_matches_a_post_with_pictures(x: X, fake: FakeX) -> None:
    source = MemoryMedia()
    request = publish_request("Read https://example.com/long/path", source, media=(source.add(),))
    fake.platform.drop_next()  # the picture's upload arrives but its answer is lost
    with pytest.raises(Transient):
        await x.publish(request)
    await x.publish(request)

    found = await x.find_published(request)

    assert fake.posts[0]["media_ids"]
    assert found is not None and found.remote_id == fake.posts[0]["id"]


async def test_find_published_is_none_when_the_post_is_not_there(x: X, fake: FakeX) -> None:
    await x.publish(publish_request("something else"))

    assert await x.find_published(publish_request("Hello from Herald")) is None


async def test_find_published_cannot_tell_about_half_a_thread(x: X, fake: FakeX) -> None:
    await x.publish(publish_request("1/2"))

    with pytest.raises(CannotTell):
        await x.find_published(publish_request("1/2", thread=("2/2",)))


async def test_publish_sends_the_text_without_byte_order_marks(x: X, fake: FakeX) -> None:
    request = publish_request("\ufeffHello from Herald", thread=("\ufeffand more",))

    published = await x.publish(request)

    assert [post["text"] for post in fake.posts] == ["Hello from Herald", "and more"]
    assert await x.find_published(request) == published


def test_validate_counts_the_text_without_byte_order_marks(x: X) -> None:
    assert x.validate(PostContent("\ufeff" + "a" * 280)) == []
    [problem] = x.validate(PostContent("\ufeff"))
    assert problem == ContentProblem("content", "X needs some text or a picture.")
    [problem] = x.validate(PostContent("ok", thread=("\ufeff",)))
    assert problem == ContentProblem("thread[0]", "A post of an X thread cannot be empty.")


def test_validate_refuses_noncharacters_naming_each_and_its_place(x: X) -> None:
    problems = x.validate(PostContent("Hi 👋\uffff", thread=("\ufffeok",)))

    assert problems == [
        ContentProblem(
            "content",
            "X refuses posts holding U+FFFF, an invisible character no text should hold "
            "(character 5); remove it.",
        ),
        ContentProblem(
            "thread[0]",
            "X refuses posts holding U+FFFE, an invisible character no text should hold "
            "(character 1); remove it.",
        ),
    ]


def test_validate_uses_the_weighted_length(x: X) -> None:
    assert x.validate(PostContent("漢" * 140)) == []
    [problem] = x.validate(PostContent("漢" * 141))
    assert problem.field == "content"
    assert "this post counts 282" in problem.message


def test_validate_checks_every_part_and_what_x_lacks(x: X) -> None:
    problems = x.validate(
        PostContent(
            "ok",
            thread=("a" * 281, " "),
            media=tuple(picture() for _ in range(5)),
            content_warning="cw",
            visibility="unlisted",
        )
    )

    assert [p.field for p in problems] == [
        "thread[0]",
        "thread[1]",
        "media_ids",
        "content_warning",
        "visibility",
    ]
    assert "X allows 4 pictures per post; this post has 5." in problems[2].message


def picture(content_type: str = "image/png", size_bytes: int = 1000, **fields: Any) -> Media:
    return Media(
        id=uuid4(),
        content_type=content_type,
        size_bytes=size_bytes,
        width=800,
        height=600,
        **fields,
    )


def test_validate_checks_each_picture_against_xs_rules(x: X) -> None:
    assert x.validate(PostContent("", media=(picture("image/webp", 5 * 1024 * 1024),))) == []

    problems = x.validate(
        PostContent(
            "ok",
            media=(
                picture("image/png"),
                picture("image/gif"),
                picture("image/jpeg", 5 * 1024 * 1024 + 1),
                picture(alt_text="a" * 1001),
            ),
        )
    )

    assert [(p.field, p.message) for p in problems] == [
        ("media_ids[1]", "X takes JPEG, PNG, WEBP pictures; this one is image/gif."),
        ("media_ids[2]", "X takes pictures up to 5 MiB; this one is 5.2 MB."),
        ("media_ids[3]", "X allows 1000 characters of alt text; this picture has 1001."),
    ]

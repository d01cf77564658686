"""The LinkedIn adapter against a scripted Posts API with LinkedIn's shapes: 201 with an empty
body and the URN in ``x-restli-id``, Rest.li errors ``{"message", "serviceErrorCode",
"status"}``, the ``q=author`` finder, and the Images API's initializeUpload answer with an
upload URL on another host that takes the bytes by PUT (201, empty body)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any
from uuid import uuid4

import httpx
import pytest

from herald_common.platforms.base import AccountCredentials, Media, PostContent, PublishRequest
from herald_common.platforms.errors import (
    AuthExpired,
    CannotTell,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.platforms.linkedin import LinkedIn, little_text
from herald_common.settings import Settings
from tests.fakes.http import FakePlatform, Handler, answer
from tests.fakes.media import MemoryMedia

URN = "urn:li:share:7012345678901234567"
SETTINGS = Settings(
    environment="test", linkedin_api_base="https://api.linkedin.test", linkedin_version="202510"
)


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, headers={"x-restli-id": URN})


def rest_li_error(status: int, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"message": message, "serviceErrorCode": 100, "status": status},
        headers=headers,
    )


def too_long(length: int) -> httpx.Response:
    return httpx.Response(
        400,
        json={
            "errorDetailType": "com.linkedin.common.error.BadRequest",
            "message": "com.linkedin.content.common.exception.BadRequestResponseException: "
            f"ShareCommentary text length ({length} characters) exceeded the maximum allowed "
            "(3000 characters)",
            "errorDetails": {
                "inputErrors": [
                    {
                        "description": "Size of array cannot be higher than the maxLength",
                        "input": {"inputPath": {"fieldPath": "/commentary"}},
                        "code": "FIELD_ARRAY_SIZE_TOO_HIGH",
                    }
                ]
            },
            "status": 400,
        },
    )


class FakeLinkedIn:
    """The Posts and Images APIs: initializeUpload hands out an upload URL on the upload host,
    which takes the picture's bytes once; a post may only name images whose bytes arrived."""

    def __init__(self) -> None:
        self.handlers: dict[tuple[str, str], Handler] = {
            ("POST", "/rest/posts"): self.create,
            ("POST", "/rest/images"): self.initialize_upload,
        }
        self.platform = FakePlatform(self.handlers)
        # image URN -> its owner, and the bytes PUT for it (None until they arrive)
        self.owners: dict[str, str] = {}
        self.images: dict[str, bytes | None] = {}
        self.posts: list[dict[str, Any]] = []

    def linkedin(self) -> LinkedIn:
        return LinkedIn(SETTINGS, self.platform.client())

    def initialize_upload(self, request: httpx.Request) -> httpx.Response:
        if request.url.params.get("action") != "initializeUpload":
            return rest_li_error(400, "Unsupported action")
        urn = f"urn:li:image:D4E10AQH{len(self.images):04d}"
        path = f"/dms-uploads/sp/v2/{urn.rsplit(':', 1)[1]}/uploaded-image/0"
        self.owners[urn] = self.platform.requests[-1].body["initializeUploadRequest"]["owner"]
        self.images[urn] = None
        self.handlers[("PUT", path)] = lambda r: self.receive(urn)
        return httpx.Response(
            200,
            json={
                "value": {
                    "uploadUrlExpiresAt": 1_767_225_600_000,
                    "uploadUrl": f"https://www.linkedin.test{path}?ca=vector_feedshare&v=beta",
                    "image": urn,
                }
            },
        )

    def receive(self, urn: str) -> httpx.Response:
        self.images[urn] = self.platform.requests[-1].body
        return httpx.Response(201)

    def create(self, request: httpx.Request) -> httpx.Response:
        body = self.platform.requests[-1].body
        # LinkedIn's answer to an over-long commentary (n8n-io/n8n#22899), counted as a Java
        # string's length: UTF-16 units of the commentary as sent.
        length = len(body["commentary"].encode("utf-16-le")) // 2
        if length > 3000:
            return too_long(length)
        content = body.get("content", {})
        named = [content["media"]] if "media" in content else []
        named += content.get("multiImage", {}).get("images", [])
        for image in named:
            if self.images.get(image["id"]) is None:
                return rest_li_error(422, f"/content/media/id :: {image['id']} is not available")
        self.posts.append(body)
        return created(request)


def linkedin_with(handler: object) -> tuple[LinkedIn, FakePlatform]:
    platform = FakePlatform({("POST", "/rest/posts"): handler})  # type: ignore[dict-item]
    return LinkedIn(SETTINGS, platform.client()), platform


def publish_request(
    text: str = "Hello from Herald",
    external_id: str = "abc123",
    media_source: MemoryMedia | None = None,
    **content: object,
) -> PublishRequest:
    return PublishRequest(
        account=AccountCredentials(
            account_id=uuid4(),
            workspace_id=uuid4(),
            external_id=external_id,
            handle="Ada",
            access_token="member-token",
        ),
        content=PostContent(text, **content),  # type: ignore[arg-type]  # test shorthand
        idempotency_key="herald-1",
        media_source=media_source or MemoryMedia(),
    )


async def test_publish_sends_a_versioned_post_and_reads_the_urn_from_the_header() -> None:
    fake = FakeLinkedIn()
    source = MemoryMedia()
    picture = source.add("image/jpeg", alt_text="A red square")

    published = await fake.linkedin().publish(
        publish_request("Hello (world) #herald", media_source=source, media=(picture,))
    )

    [image] = fake.images
    [sent] = fake.platform.received("/rest/posts")
    assert sent.headers["linkedin-version"] == "202510"
    assert sent.headers["x-restli-protocol-version"] == "2.0.0"
    assert sent.headers["authorization"] == "Bearer member-token"
    assert sent.body == {
        "author": "urn:li:person:abc123",
        "commentary": r"Hello \(world\) #herald",
        "visibility": "PUBLIC",
        "distribution": {
            "feedDistribution": "MAIN_FEED",
            "targetEntities": [],
            "thirdPartyDistributionChannels": [],
        },
        "lifecycleState": "PUBLISHED",
        "isReshareDisabledByAuthor": False,
        "content": {"media": {"id": image, "altText": "A red square"}},
    }
    assert published.remote_id == URN
    assert published.remote_url == f"https://www.linkedin.com/feed/update/{URN}/"


async def test_a_picture_is_registered_then_its_bytes_are_put_to_the_upload_url() -> None:
    fake = FakeLinkedIn()
    source = MemoryMedia()
    picture = source.add("image/png")

    await fake.linkedin().publish(publish_request("Hi", media_source=source, media=(picture,)))

    [initialize, put, _post] = fake.platform.requests
    assert initialize.params == {"action": "initializeUpload"}
    assert initialize.body == {"initializeUploadRequest": {"owner": "urn:li:person:abc123"}}
    assert initialize.headers["linkedin-version"] == "202510"
    assert initialize.headers["x-restli-protocol-version"] == "2.0.0"
    assert initialize.headers["authorization"] == "Bearer member-token"
    assert (put.method, put.host) == ("PUT", "www.linkedin.test")
    assert put.headers["authorization"] == "Bearer member-token"
    assert put.body == source.files[picture.id]
    assert source.remembered == {picture.id: next(iter(fake.images))}


async def test_an_organization_posts_as_itself_with_several_images() -> None:
    fake = FakeLinkedIn()
    source = MemoryMedia()
    pictures = (source.add(alt_text="first"), source.add("image/gif"))

    await fake.linkedin().publish(
        publish_request(
            "Team news",
            external_id="urn:li:organization:42",
            media_source=source,
            media=pictures,
            visibility="connections",
        )
    )

    [body] = fake.posts
    [first, second] = fake.images
    assert body["author"] == "urn:li:organization:42"
    assert body["visibility"] == "CONNECTIONS"
    assert body["content"] == {
        "multiImage": {"images": [{"id": first, "altText": "first"}, {"id": second}]}
    }
    assert set(fake.owners.values()) == {"urn:li:organization:42"}


async def test_a_retry_reuses_what_an_earlier_attempt_uploaded() -> None:
    fake = FakeLinkedIn()
    fake.images["urn:li:image:EarlierUpload"] = b"bytes from the earlier attempt"
    source = MemoryMedia()
    picture = source.add()

    await fake.linkedin().publish(
        replace(
            publish_request("Again", media_source=source, media=(picture,)),
            uploaded={picture.id: "urn:li:image:EarlierUpload"},
        )
    )

    assert fake.platform.received("/rest/images") == []
    assert source.reads == []
    assert fake.posts[0]["content"] == {"media": {"id": "urn:li:image:EarlierUpload"}}


async def test_an_upload_is_remembered_before_the_post_is_created() -> None:
    fake = FakeLinkedIn()
    fake.handlers[("POST", "/rest/posts")] = answer(
        500, {"message": "Internal Server Error", "status": 500}
    )
    source = MemoryMedia()
    picture = source.add()

    with pytest.raises(Transient):
        await fake.linkedin().publish(publish_request(media_source=source, media=(picture,)))

    assert source.remembered == {picture.id: next(iter(fake.images))}


async def test_an_upload_429_honours_retry_after_and_posts_nothing() -> None:
    fake = FakeLinkedIn()
    fake.handlers[("POST", "/rest/images")] = answer(
        429,
        {
            "serviceErrorCode": 101,
            "message": "Resource level throttle limit for calls to this resource is reached.",
            "status": 429,
        },
        {"Retry-After": "300"},
    )
    source = MemoryMedia()

    with pytest.raises(RateLimited) as raised:
        await fake.linkedin().publish(publish_request(media_source=source, media=(source.add(),)))

    assert raised.value.retry_after == 300
    assert fake.posts == []


@pytest.mark.parametrize("step", ["initialize", "put"])
async def test_an_upload_refusing_the_token_is_auth_expired(step: str) -> None:
    fake = FakeLinkedIn()
    refused = rest_li_error(401, "Invalid access token")
    if step == "initialize":
        fake.handlers[("POST", "/rest/images")] = lambda r: refused
    else:
        initialize = fake.initialize_upload

        def refusing_put(request: httpx.Request) -> httpx.Response:
            response = initialize(request)
            for key in [k for k in fake.handlers if k[0] == "PUT"]:
                fake.handlers[key] = lambda r: refused
            return response

        fake.handlers[("POST", "/rest/images")] = refusing_put
    source = MemoryMedia()

    with pytest.raises(AuthExpired):
        await fake.linkedin().publish(publish_request(media_source=source, media=(source.add(),)))

    assert fake.posts == []
    assert source.remembered == {}


async def test_bytes_put_but_unanswered_are_transient_and_not_remembered() -> None:
    fake = FakeLinkedIn()
    initialize = fake.initialize_upload

    def then_drop(request: httpx.Request) -> httpx.Response:
        fake.platform.drop_next()  # the PUT that follows arrives, its answer is lost
        return initialize(request)

    fake.handlers[("POST", "/rest/images")] = then_drop
    source = MemoryMedia()

    with pytest.raises(Transient):
        await fake.linkedin().publish(publish_request(media_source=source, media=(source.add(),)))

    assert list(fake.images.values()) == [source.files[next(iter(source.files))]]
    assert source.remembered == {}
    assert fake.posts == []


def test_little_text_escapes_reserved_characters_but_not_links_or_hashtags() -> None:
    text = "Costs [~5*] <now> @you_me | see https://example.com/a_(b) #tag # \\"

    assert little_text(text) == (
        r"Costs \[\~5\*\] \<now\> \@you\_me \| see https://example.com/a_(b) #tag \# \\"
    )


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (rest_li_error(401, "Invalid access token"), AuthExpired),
        (
            rest_li_error(403, "Not enough permissions to access: partnerApiPostsExternal.CREATE"),
            AuthExpired,
        ),
        (rest_li_error(500, "Internal Server Error"), Transient),
        (rest_li_error(422, "ERROR :: /commentary :: length exceeds 3000"), Rejected),
        (rest_li_error(422, f"Content is a duplicate of {URN}"), OutcomeUnknown),
    ],
)
async def test_errors_map_onto_the_failure_model(
    response: httpx.Response, error: type[Exception]
) -> None:
    linkedin, _ = linkedin_with(answer(response.status_code, response.json()))

    with pytest.raises(error):
        await linkedin.publish(publish_request())


async def test_429_honours_retry_after_and_otherwise_waits_a_minute() -> None:
    body = {
        "serviceErrorCode": 101,
        "message": "Resource level throttle limit for calls to this resource is reached.",
        "status": 429,
    }
    with_header, _ = linkedin_with(answer(429, body, {"Retry-After": "120"}))
    without, _ = linkedin_with(answer(429, body))

    with pytest.raises(RateLimited) as announced:
        await with_header.publish(publish_request())
    with pytest.raises(RateLimited) as unannounced:
        await without.publish(publish_request())

    assert announced.value.retry_after == 120
    assert unannounced.value.retry_after == 60


async def test_a_201_without_an_id_is_outcome_unknown() -> None:
    linkedin, _ = linkedin_with(answer(201))

    with pytest.raises(OutcomeUnknown):
        await linkedin.publish(publish_request())


async def test_connection_dropped_after_sending_is_outcome_unknown() -> None:
    linkedin, platform = linkedin_with(created)
    platform.drop_next()

    with pytest.raises(OutcomeUnknown):
        await linkedin.publish(publish_request())
    assert len(platform.requests) == 1


async def test_find_published_lists_the_authors_posts() -> None:
    posts = {
        "elements": [
            {"id": "urn:li:share:2", "commentary": "Other", "author": "urn:li:person:abc123"},
            {"id": URN, "commentary": r"Hello \(world\)", "author": "urn:li:person:abc123"},
        ],
        "paging": {"start": 0, "count": 20},
    }
    platform = FakePlatform({("GET", "/rest/posts"): answer(200, posts)})
    linkedin = LinkedIn(
        Settings(environment="test", linkedin_api_base="https://li.test"), platform.client()
    )

    found = await linkedin.find_published(publish_request("Hello (world)"))
    missing = await linkedin.find_published(publish_request("Never posted"))

    assert found is not None and found.remote_id == URN
    assert missing is None
    lookup = platform.requests[0]
    assert lookup.params["q"] == "author"
    assert lookup.params["author"] == "urn:li:person:abc123"
    assert lookup.headers["x-restli-method"] == "FINDER"


async def test_find_published_cannot_tell_without_read_permission() -> None:
    platform = FakePlatform(
        {
            ("GET", "/rest/posts"): answer(
                403,
                {
                    "message": "Not enough permissions to access: "
                    "partnerApiPostsExternal.FINDER-author",
                    "status": 403,
                },
            )
        }
    )
    linkedin = LinkedIn(
        Settings(environment="test", linkedin_api_base="https://li.test"), platform.client()
    )

    with pytest.raises(CannotTell) as raised:
        await linkedin.find_published(publish_request())

    assert "r_member_social" in raised.value.message


def picture(
    content_type: str = "image/png",
    *,
    size_bytes: int = 1000,
    width: int = 800,
    height: int = 600,
    alt_text: str | None = None,
) -> Media:
    return Media(uuid4(), content_type, size_bytes, width, height, alt_text)


def test_validate() -> None:
    linkedin, _ = linkedin_with(created)

    assert linkedin.validate(PostContent("a" * 3000)) == []
    problems = linkedin.validate(
        PostContent(
            "a" * 3001,
            media=tuple(picture() for _ in range(21)),
            thread=("more",),
            content_warning="cw",
            visibility="friends",
        )
    )
    assert [p.field for p in problems] == [
        "content",
        "media_ids",
        "thread",
        "content_warning",
        "visibility",
    ]


@pytest.mark.parametrize(
    ("text", "length"),
    [
        ("a" * 3000, 3000),
        ("a" * 3001, 3001),
        ("😀" * 1500, 3000),  # two UTF-16 units each
        ("😀" * 1500 + "a", 3001),
        ("(" * 1500, 3000),  # sent escaped: \( each
        ("_" * 1500 + "a", 3001),
        ("#herald " * 375, 3000),  # a hashtag's # is sent as it is
        ("see https://example.com/a_(b) " * 100, 3000),  # so are links
    ],
)
async def test_validate_counts_what_linkedin_counts(text: str, length: int) -> None:
    fake = FakeLinkedIn()
    linkedin = LinkedIn(SETTINGS, fake.platform.client())
    problems = linkedin.validate(PostContent(text))

    if length <= 3000:
        assert problems == []
        await linkedin.publish(publish_request(text))
        assert len(fake.posts) == 1
    else:
        [problem] = problems
        assert problem.field == "content"
        assert problem.message.endswith(f"this post has {length}.")
        with pytest.raises(Rejected, match=rf"ShareCommentary text length \({length} characters"):
            await linkedin.publish(publish_request(text))
        assert fake.posts == []


def test_validate_checks_each_picture_against_the_images_api() -> None:
    linkedin, _ = linkedin_with(created)
    assert linkedin.validate(PostContent("", media=(picture("image/gif"),))) == []

    problems = linkedin.validate(
        PostContent(
            "ok",
            media=(
                picture("image/jpeg"),
                picture("image/webp"),
                picture(width=6016, height=6016),
                picture(size_bytes=9 * 1024 * 1024),
                picture(alt_text="a" * 4087),
            ),
        )
    )

    assert [(p.field, p.message) for p in problems] == [
        ("media_ids[1]", "LinkedIn takes JPEG, PNG, GIF pictures; this one is image/webp."),
        (
            "media_ids[2]",
            "LinkedIn takes pictures up to 36,152,319 pixels; this one is 6016 x 6016.",
        ),
        ("media_ids[3]", "LinkedIn takes pictures up to 8 MiB; this one is 9 MiB."),
        ("media_ids[4]", "LinkedIn allows 4086 characters of alt text; this picture has 4087."),
    ]

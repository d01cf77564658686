"""The LinkedIn adapter against a scripted Posts API with LinkedIn's shapes: 201 with an empty
body and the URN in ``x-restli-id``, Rest.li errors ``{"message", "serviceErrorCode",
"status"}``, and the ``q=author`` finder."""

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
from herald_common.platforms.linkedin import LinkedIn, little_text
from herald_common.settings import Settings
from tests.fakes.http import FakePlatform, answer

URN = "urn:li:share:7012345678901234567"


def created(request: httpx.Request) -> httpx.Response:
    return httpx.Response(201, headers={"x-restli-id": URN})


def linkedin_with(handler: object) -> tuple[LinkedIn, FakePlatform]:
    platform = FakePlatform({("POST", "/rest/posts"): handler})  # type: ignore[dict-item]
    settings = Settings(
        environment="test", linkedin_api_base="https://api.linkedin.test", linkedin_version="202510"
    )
    return LinkedIn(settings, platform.client()), platform


def publish_request(
    text: str = "Hello from Herald", external_id: str = "abc123", **content: object
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
    )


async def test_publish_sends_a_versioned_post_and_reads_the_urn_from_the_header() -> None:
    linkedin, platform = linkedin_with(created)

    published = await linkedin.publish(
        publish_request("Hello (world) #herald", media_ids=("urn:li:image:1",))
    )

    [sent] = platform.requests
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
        "content": {"media": {"id": "urn:li:image:1"}},
    }
    assert published.remote_id == URN
    assert published.remote_url == f"https://www.linkedin.com/feed/update/{URN}/"


async def test_an_organization_posts_as_itself_with_several_images() -> None:
    linkedin, platform = linkedin_with(created)

    await linkedin.publish(
        publish_request(
            "Team news",
            external_id="urn:li:organization:42",
            media_ids=("i1", "i2"),
            visibility="connections",
        )
    )

    body = platform.requests[0].body
    assert body["author"] == "urn:li:organization:42"
    assert body["visibility"] == "CONNECTIONS"
    assert body["content"] == {"multiImage": {"images": [{"id": "i1"}, {"id": "i2"}]}}


def test_little_text_escapes_reserved_characters_but_not_links_or_hashtags() -> None:
    text = "Costs [~5*] <now> @you_me | see https://example.com/a_(b) #tag # \\"

    assert little_text(text) == (
        r"Costs \[\~5\*\] \<now\> \@you\_me \| see https://example.com/a_(b) #tag \# \\"
    )


def rest_li_error(status: int, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(
        status,
        json={"message": message, "serviceErrorCode": 100, "status": status},
        headers=headers,
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


def test_validate() -> None:
    linkedin, _ = linkedin_with(created)

    assert linkedin.validate(PostContent("a" * 3000)) == []
    problems = linkedin.validate(
        PostContent(
            "a" * 3001,
            media_ids=tuple("x" * 21),
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

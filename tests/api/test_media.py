"""Pictures: upload (checked by their bytes), read back, list, delete, and name them in posts."""

from __future__ import annotations

import hashlib
import io
import os
import uuid
from datetime import timedelta

import httpx
import pytest
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.media import service as media_service
from herald_api.problems import ProblemError
from herald_common import clock
from herald_common.roles import Role
from herald_common.settings import Settings
from tests.conftest import Tenant
from tests.fakes.media import image_bytes, png_inflating_to
from tests.members import make_member

PROBLEM = "application/problem+json"


def later() -> str:
    return (clock.now() + timedelta(hours=1)).isoformat()


async def upload(
    client: httpx.AsyncClient,
    data: bytes,
    *,
    filename: str = "picture.png",
    content_type: str = "image/png",
    alt_text: str | None = None,
) -> httpx.Response:
    form = {} if alt_text is None else {"alt_text": alt_text}
    return await client.post("/v1/media", files={"file": (filename, data, content_type)}, data=form)


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["type"].endswith(f"/{slug}")


@pytest.mark.parametrize(
    ("content_type", "width", "height"),
    [("image/png", 30, 20), ("image/jpeg", 64, 48), ("image/gif", 5, 7), ("image/webp", 9, 3)],
)
async def test_a_picture_is_stored_with_what_its_bytes_say(
    client: httpx.AsyncClient, content_type: str, width: int, height: int
) -> None:
    data = image_bytes(content_type, width=width, height=height)
    # The client's name and type are ignored: the bytes decide.
    created = await upload(
        client, data, filename="x.bin", content_type="application/octet-stream", alt_text="A dot"
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["content_type"] == content_type
    assert (body["width"], body["height"]) == (width, height)
    assert body["size_bytes"] == len(data)
    assert body["sha256"] == hashlib.sha256(data).hexdigest()
    assert body["alt_text"] == "A dot"
    assert created.headers["location"] == f"/v1/media/{body['id']}"

    assert (await client.get(f"/v1/media/{body['id']}")).json() == body
    content = await client.get(f"/v1/media/{body['id']}/content")
    assert content.status_code == 200
    assert content.headers["content-type"] == content_type
    assert content.content == data


async def test_files_that_are_not_pictures_are_refused(client: httpx.AsyncClient) -> None:
    assert_problem(await upload(client, b"hello, world"), 415, "unsupported-media-type")
    png = image_bytes(width=50, height=50, noise=True)
    assert_problem(await upload(client, png[: len(png) // 2]), 415, "unsupported-media-type")
    bmp = io.BytesIO()
    Image.new("RGB", (4, 4)).save(bmp, format="BMP")
    refused = await upload(client, bmp.getvalue())
    assert_problem(refused, 415, "unsupported-media-type")
    assert "BMP" in refused.json()["detail"]
    assert_problem(await upload(client, b""), 422, "validation-failed")


async def test_a_decompression_bomb_is_refused_unread(client: httpx.AsyncClient) -> None:
    # 50 megapixels of one colour compress to a few kilobytes.
    bomb = io.BytesIO()
    Image.new("1", (10_000, 5_000)).save(bomb, format="PNG")
    assert len(bomb.getvalue()) < 100_000
    assert_problem(await upload(client, bomb.getvalue()), 422, "picture-too-large")


async def test_a_small_picture_whose_pixel_data_inflates_far_beyond_it_is_refused(
    client: httpx.AsyncClient,
) -> None:
    # 1 x 1 pixel, and 200 MB of pixel data: a few hundred kilobytes on the wire.
    bomb = png_inflating_to(1, 1, 200_000_000)
    assert len(bomb) < 1_000_000
    refused = await upload(client, bomb)
    assert_problem(refused, 422, "picture-too-large")
    assert "1 x 1" in refused.json()["detail"]
    # The same picture with exactly the pixel data it needs (a filter byte and one RGB
    # pixel) is stored.
    assert (await upload(client, png_inflating_to(1, 1, 4))).status_code == 201


async def test_a_picture_that_decodes_past_the_memory_bound_is_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    # 40 megapixels (within the pixel limit) of transparent black: ~160 KB that decodes to
    # 160 MB of RGBA.
    width, height = 8_000, 5_000
    bomb = png_inflating_to(width, height, height * (1 + width * 4), rgba=True)
    assert len(bomb) < 1_000_000
    refused = await upload(client, bomb)
    assert_problem(refused, 422, "picture-too-large")
    assert f"{settings.media_max_decoded_bytes:,}" in refused.json()["detail"]


async def test_animated_pictures_are_stored_and_every_frame_counts(
    client: httpx.AsyncClient,
) -> None:
    frames = [Image.new("RGB", (40, 30), (10 * i, 0, 0)) for i in range(3)]
    animated = io.BytesIO()
    frames[0].save(animated, format="PNG", save_all=True, append_images=frames[1:])
    assert (await upload(client, animated.getvalue())).status_code == 201
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:])
    assert (await upload(client, gif.getvalue(), content_type="image/gif")).status_code == 201
    # Each frame of a GIF is 40 x 30 palette bytes, so three take 3,600 bytes.
    with pytest.raises(ProblemError, match="3,600 bytes once decoded in 3 frames"):
        media_service._inspect(gif.getvalue(), max_decoded_bytes=3_599)
    media_service._inspect(gif.getvalue(), max_decoded_bytes=3_600)


async def test_pictures_over_the_size_limit_are_refused(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    limit = settings.media_max_bytes
    # Just over: the upload itself is read and refused.
    assert_problem(await upload(client, os.urandom(limit + 1)), 413, "body-too-large")
    # Far over: refused by its Content-Length before it is read.
    assert_problem(await upload(client, os.urandom(limit + 200_000)), 413, "body-too-large")
    # Other routes keep the small limit.
    big_json = await client.post("/v1/posts", content=b"x" * (settings.max_request_body_bytes + 1))
    assert_problem(big_json, 413, "body-too-large")


async def test_alt_text_is_checked(client: httpx.AsyncClient) -> None:
    too_long = await upload(client, image_bytes(), alt_text="a" * 1_501)
    assert_problem(too_long, 422, "validation-failed")
    assert too_long.json()["errors"][0]["field"] == "alt_text"


async def test_pictures_belong_to_their_workspace(
    client: httpx.AsyncClient, api_url: str, other_tenant: Tenant
) -> None:
    mine = (await upload(client, image_bytes())).json()
    async with httpx.AsyncClient(base_url=api_url, headers=other_tenant.headers) as other:
        assert_problem(await other.get(f"/v1/media/{mine['id']}"), 404, "media-not-found")
        assert_problem(await other.get(f"/v1/media/{mine['id']}/content"), 404, "media-not-found")
        assert_problem(await other.delete(f"/v1/media/{mine['id']}"), 404, "media-not-found")
        assert (await other.get("/v1/media")).json()["items"] == []
        # Nor can a post of the other workspace name it.
        post = await other.post(
            "/v1/posts",
            json={
                "content": "Mine now",
                "media_ids": [mine["id"]],
                "scheduled_at": later(),
                "targets": [{"account_id": str(other_tenant.account_id)}],
            },
        )
        assert_problem(post, 422, "invalid-post")
        assert post.json()["errors"][0]["field"] == "media_ids[0]"


async def test_viewers_cannot_upload(
    api_url: str, tenant: Tenant, settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    viewer = await make_member(sessions, settings, tenant.workspace_id, Role.VIEWER)
    async with httpx.AsyncClient(base_url=api_url, headers=viewer.headers) as http:
        assert_problem(await upload(http, image_bytes()), 403, "forbidden")
        assert (await http.get("/v1/media")).status_code == 200


async def test_pictures_are_listed_newest_first_a_page_at_a_time(
    client: httpx.AsyncClient,
) -> None:
    ids = [(await upload(client, image_bytes(width=i + 1))).json()["id"] for i in range(3)]
    first = (await client.get("/v1/media", params={"limit": 2})).json()
    assert [m["id"] for m in first["items"]] == ids[::-1][:2]
    rest = (await client.get("/v1/media", params={"cursor": first["next_cursor"]})).json()
    assert [m["id"] for m in rest["items"]] == ids[:1]
    assert rest["next_cursor"] is None


async def test_a_post_names_its_pictures_in_order(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    first, second = [(await upload(client, image_bytes(width=w))).json()["id"] for w in (3, 4)]
    created = await client.post(
        "/v1/posts",
        json={
            "content": "With pictures",
            "media_ids": [second, first],
            "scheduled_at": later(),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert created.status_code == 201, created.text
    assert created.json()["media_ids"] == [second, first]
    post_id, etag = created.json()["id"], created.headers["etag"]

    changed = await client.patch(
        f"/v1/posts/{post_id}", json={"media_ids": [first]}, headers={"If-Match": etag}
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["media_ids"] == [first]
    assert (await client.get(f"/v1/posts/{post_id}")).json()["media_ids"] == [first]


async def test_posts_naming_unknown_or_repeated_pictures_are_refused(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    known = (await upload(client, image_bytes())).json()["id"]
    unknown = await client.post(
        "/v1/posts",
        json={
            "content": "Hi",
            "media_ids": [known, str(uuid.uuid4())],
            "scheduled_at": later(),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert_problem(unknown, 422, "invalid-post")
    assert [e["field"] for e in unknown.json()["errors"]] == ["media_ids[1]"]
    repeated = await client.post(
        "/v1/posts",
        json={
            "content": "Hi",
            "media_ids": [known, known],
            "scheduled_at": later(),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert_problem(repeated, 422, "validation-failed")


async def test_validate_reports_each_platforms_picture_rules(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    pictures = [(await upload(client, image_bytes(width=w))).json()["id"] for w in range(1, 6)]
    checked = await client.post(
        "/v1/posts/validate",
        json={
            "content": "Five pictures",
            "media_ids": [*pictures, str(uuid.uuid4())],
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    assert checked.status_code == 200, checked.text
    problems = checked.json()["problems"]
    assert {"field": "media_ids[5]", "message": problems[0]["message"]} == problems[0]
    # The sandbox takes four.
    assert problems[1]["field"] == "media_ids"
    assert "4 pictures" in problems[1]["message"]
    assert "this post has 5" in problems[1]["message"]


async def test_a_picture_in_use_cannot_be_deleted(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    picture = (await upload(client, image_bytes())).json()["id"]
    post = await client.post(
        "/v1/posts",
        json={
            "content": "Hi",
            "media_ids": [picture],
            "scheduled_at": later(),
            "targets": [{"account_id": str(tenant.account_id)}],
        },
    )
    refused = await client.delete(f"/v1/media/{picture}")
    assert_problem(refused, 409, "media-in-use")
    assert post.json()["id"] in refused.json()["detail"]

    assert (await client.delete(f"/v1/posts/{post.json()['id']}")).status_code == 200
    assert (await client.delete(f"/v1/media/{picture}")).status_code == 204
    assert_problem(await client.get(f"/v1/media/{picture}"), 404, "media-not-found")

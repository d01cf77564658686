"""The Bluesky adapter against a real PDS (npm @atproto/dev-env's TestNetworkNoAppView: a PDS
and a PLC on SQLite, started by tests/peers/bluesky/network.js on free ports), plus the few
answers a local PDS will not give on demand (429, a lost connection) from a scripted one."""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import Any
from uuid import UUID, uuid4

import httpx
import pytest

from herald_common import clock
from herald_common.http import create_http_client
from herald_common.ids import new_id
from herald_common.platforms.base import (
    AccountCredentials,
    Media,
    PostContent,
    PublishRequest,
)
from herald_common.platforms.bluesky import Bluesky
from herald_common.platforms.bluesky_record_key import record_key
from herald_common.platforms.errors import (
    AuthExpired,
    OutcomeUnknown,
    RateLimited,
    Rejected,
    Transient,
)
from herald_common.settings import Settings
from tests.conftest import free_port
from tests.fakes.http import FakePlatform, answer
from tests.fakes.media import MemoryMedia, image_bytes, media_of
from tests.peers.node import peer_dir

POST = "app.bsky.feed.post"


@dataclass(frozen=True, slots=True)
class Account:
    handle: str
    password: str
    did: str
    account_id: UUID


@pytest.fixture(scope="module")
def pds_url() -> Iterator[str]:
    folder = peer_dir("bluesky")
    process = subprocess.Popen(
        ["node", "network.js", str(free_port()), str(free_port())],
        cwd=folder,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    line = process.stdout.readline()  # printed once the PDS answers; empty if it died
    if not line:
        process.wait(10)
        pytest.fail(f"the local PDS did not start (exit {process.returncode})")
    yield json.loads(line)["pds"]
    process.stdin.close()  # network.js closes the network and exits
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def create_account(pds_url: str, name: str) -> Account:
    handle, password = f"{name}-{uuid4().hex[:6]}.test", f"pw-{uuid4().hex}"
    response = httpx.post(
        f"{pds_url}/xrpc/com.atproto.server.createAccount",
        json={"handle": handle, "email": f"{handle}@example.com", "password": password},
    )
    response.raise_for_status()
    return Account(handle, password, response.json()["did"], uuid4())


@pytest.fixture(scope="module")
def alice(pds_url: str) -> Account:
    return create_account(pds_url, "alice")


@pytest.fixture(scope="module")
def bob(pds_url: str) -> Account:
    return create_account(pds_url, "bob")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = create_http_client(Settings(environment="test"))
    yield client
    await client.aclose()


@pytest.fixture
def calls(http: httpx.AsyncClient) -> list[str]:
    """The XRPC methods the adapter called, in order."""
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url.path.rsplit("/", 1)[-1])

    http.event_hooks["request"].append(record)
    return seen


@pytest.fixture
def bluesky(pds_url: str, http: httpx.AsyncClient) -> Bluesky:
    return Bluesky(Settings(environment="test", bluesky_api_base=pds_url), http)


def publish_request(
    account: Account, text: str = "Hello from Herald", **content: object
) -> PublishRequest:
    target = new_id()
    return PublishRequest(
        account=AccountCredentials(
            account_id=account.account_id,
            workspace_id=uuid4(),
            external_id=account.did,
            handle=account.handle,
            access_token=account.password,
        ),
        content=PostContent(text, **content),  # type: ignore[arg-type]  # test shorthand
        idempotency_key=f"herald-{target}",
        target_id=target,
    )


def with_pictures(
    request: PublishRequest, media: MemoryMedia, *pictures: Media, **fields: Any
) -> PublishRequest:
    """``request`` carrying ``pictures``, whose bytes ``media`` holds."""
    return replace(
        request,
        content=replace(request.content, media=pictures),
        media_source=media,
        **fields,
    )


def post_value(pds_url: str, account: Account, uri: str) -> dict[str, Any]:
    [value] = [r["value"] for r in records(pds_url, account) if r["uri"] == uri]
    assert isinstance(value, dict)
    return value


def get_blob(pds_url: str, account: Account, cid: str) -> httpx.Response:
    return httpx.get(
        f"{pds_url}/xrpc/com.atproto.sync.getBlob", params={"did": account.did, "cid": cid}
    )


def records(pds_url: str, account: Account) -> list[dict[str, object]]:
    response = httpx.get(
        f"{pds_url}/xrpc/com.atproto.repo.listRecords",
        params={"repo": account.did, "collection": POST, "limit": 100},
    )
    response.raise_for_status()
    listed: list[dict[str, object]] = response.json()["records"]
    return listed


# -- publishing on the real PDS ----------------------------------------------------------------


async def test_publish_creates_one_post_under_the_targets_record_key(
    bluesky: Bluesky, pds_url: str, alice: Account
) -> None:
    request = publish_request(alice, "Scheduled with Herald")

    published = await bluesky.publish(request)

    rkey = record_key(request)
    assert published.remote_id == f"at://{alice.did}/{POST}/{rkey}"
    assert published.remote_url == f"https://bsky.app/profile/{alice.did}/post/{rkey}"
    [record] = [r for r in records(pds_url, alice) if r["uri"] == published.remote_id]
    value = record["value"]
    assert isinstance(value, dict)
    assert value["text"] == "Scheduled with Herald"
    assert value["createdAt"].endswith("Z")


async def test_facets_carry_utf8_byte_offsets_and_resolved_mentions(
    bluesky: Bluesky, pds_url: str, alice: Account, bob: Account
) -> None:
    text = f"Café ☕ with @{bob.handle} — see https://example.com/menu. #Frühstück @nobody.test"

    published = await bluesky.publish(publish_request(alice, text))

    [record] = [r for r in records(pds_url, alice) if r["uri"] == published.remote_id]
    value = record["value"]
    assert isinstance(value, dict)
    encoded = text.encode()
    spans = {
        facet["features"][0]["$type"].rsplit("#", 1)[-1]: (
            encoded[facet["index"]["byteStart"] : facet["index"]["byteEnd"]].decode(),
            facet["features"][0],
        )
        for facet in value["facets"]
    }
    assert spans["mention"][0] == f"@{bob.handle}"
    assert spans["mention"][1]["did"] == bob.did
    assert spans["link"] == (
        "https://example.com/menu",
        {"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com/menu"},
    )
    assert spans["tag"][0] == "#Frühstück"
    # @nobody.test resolves to no account: it stays plain text.
    assert len(value["facets"]) == 3


async def test_a_retry_collides_with_the_first_post_instead_of_doubling_it(
    bluesky: Bluesky, pds_url: str, alice: Account
) -> None:
    request = publish_request(alice, "Only once, please")

    first = await bluesky.publish(request)
    again = await bluesky.publish(request)

    assert again == first
    assert [r["uri"] for r in records(pds_url, alice)].count(first.remote_id) == 1


async def test_a_thread_is_posted_as_replies_and_resumes_after_a_cut(
    bluesky: Bluesky, pds_url: str, alice: Account
) -> None:
    whole = publish_request(alice, "1/3", thread=("2/3", "3/3"))
    first_part_only = replace(whole, content=replace(whole.content, thread=()))
    await bluesky.publish(first_part_only)  # as if the publish died after part one

    published = await bluesky.publish(whole)

    mine = {r["uri"]: r["value"] for r in records(pds_url, alice)}
    uris = [f"at://{alice.did}/{POST}/{record_key(whole, i)}" for i in range(3)]
    assert [mine[u]["text"] for u in uris] == ["1/3", "2/3", "3/3"]  # type: ignore[index]
    assert mine[uris[2]]["reply"]["root"]["uri"] == uris[0]  # type: ignore[index]
    assert mine[uris[2]]["reply"]["parent"]["uri"] == uris[1]  # type: ignore[index]
    assert published.remote_id == uris[0]


async def test_find_published_is_an_exact_lookup_of_the_record_key(
    bluesky: Bluesky, alice: Account
) -> None:
    request = publish_request(alice, "Did it land?")
    assert await bluesky.find_published(request) is None

    published = await bluesky.publish(request)

    assert await bluesky.find_published(request) == published


# -- pictures on the real PDS -------------------------------------------------------------------


async def test_pictures_are_uploaded_as_blobs_and_embedded_with_their_alt_text(
    bluesky: Bluesky, pds_url: str, alice: Account
) -> None:
    media = MemoryMedia()
    pictures = (
        media.add("image/png", alt_text="A cat asleep on a keyboard", width=40, height=30),
        media.add("image/jpeg", width=20, height=50),
        media.add("image/gif"),
        media.add("image/webp", alt_text="Ünïcödé ☕"),
    )
    request = with_pictures(publish_request(alice, "Four pictures"), media, *pictures)

    published = await bluesky.publish(request)

    embed = post_value(pds_url, alice, published.remote_id)["embed"]
    assert embed["$type"] == "app.bsky.embed.images"
    images = embed["images"]
    assert [i["alt"] for i in images] == ["A cat asleep on a keyboard", "", "", "Ünïcödé ☕"]
    assert images[0]["aspectRatio"] == {"width": 40, "height": 30}
    assert images[1]["aspectRatio"] == {"width": 20, "height": 50}
    assert [i["image"]["mimeType"] for i in images] == [p.content_type for p in pictures]
    for picture, image in zip(pictures, images, strict=True):
        blob = get_blob(pds_url, alice, image["image"]["ref"]["$link"])
        assert blob.status_code == 200
        assert blob.content == media.files[picture.id]
        assert json.loads(media.remembered[picture.id]) == image["image"]


async def test_a_retry_embeds_the_blobs_an_earlier_attempt_uploaded(
    bluesky: Bluesky, http: httpx.AsyncClient, pds_url: str, alice: Account, calls: list[str]
) -> None:
    refused: list[httpx.Request] = []

    async def refuse_the_first_create(request: httpx.Request) -> None:
        if request.url.path.endswith("createRecord") and not refused:
            refused.append(request)
            raise httpx.ConnectError("refused", request=request)

    http.event_hooks["request"].append(refuse_the_first_create)
    media = MemoryMedia()
    picture = media.add(alt_text="uploaded once")
    request = with_pictures(publish_request(alice, "Second time lucky"), media, picture)
    with pytest.raises(Transient):
        await bluesky.publish(request)  # the picture went up, the post did not
    assert calls.count("com.atproto.repo.uploadBlob") == 1

    published = await bluesky.publish(replace(request, uploaded=dict(media.remembered)))

    assert calls.count("com.atproto.repo.uploadBlob") == 1
    [image] = post_value(pds_url, alice, published.remote_id)["embed"]["images"]
    assert image["image"] == json.loads(media.remembered[picture.id])
    blob = get_blob(pds_url, alice, image["image"]["ref"]["$link"])
    assert blob.content == media.files[picture.id]  # the temporary upload became permanent


async def test_a_blob_the_pds_no_longer_holds_is_uploaded_again(
    bluesky: Bluesky, pds_url: str, alice: Account, bob: Account, calls: list[str]
) -> None:
    media = MemoryMedia()
    picture = media.add(width=12, height=9)
    # Bob's upload of the same picture: a reference Alice's repository has never held, as if
    # her PDS had collected an upload of hers that waited too long.
    await bluesky.publish(with_pictures(publish_request(bob, "Bob's"), media, picture))
    stale = {picture.id: media.remembered.pop(picture.id)}
    uploads_before = calls.count("com.atproto.repo.uploadBlob")

    published = await bluesky.publish(
        with_pictures(publish_request(alice, "Alice's"), media, picture, uploaded=stale)
    )

    assert calls.count("com.atproto.repo.uploadBlob") == uploads_before + 1
    [image] = post_value(pds_url, alice, published.remote_id)["embed"]["images"]
    assert get_blob(pds_url, alice, image["image"]["ref"]["$link"]).status_code == 200
    assert picture.id in media.remembered  # the new upload, for any further retry


async def test_find_published_finds_a_post_with_pictures(bluesky: Bluesky, alice: Account) -> None:
    media = MemoryMedia()
    request = with_pictures(publish_request(alice, "Found?"), media, media.add())
    assert await bluesky.find_published(request) is None

    published = await bluesky.publish(request)

    assert await bluesky.find_published(request) == published


async def test_the_pds_refuses_a_picture_over_the_lexicons_megabyte(
    bluesky: Bluesky, alice: Account
) -> None:
    media = MemoryMedia()
    big = media.add("image/png", width=600, height=600, noise=True)
    assert big.size_bytes > 1_000_000
    request = with_pictures(publish_request(alice, "Too big"), media, big)

    assert [p.field for p in bluesky.validate(request.content)] == ["media_ids[0]"]
    with pytest.raises(Rejected) as raised:  # what validate spares the user at publish time
        await bluesky.publish(request)
    assert "maximum 1000000" in raised.value.message  # the lexicon's limit, as the PDS says it


async def test_one_login_serves_many_posts(
    bluesky: Bluesky, alice: Account, calls: list[str]
) -> None:
    for n in range(3):
        await bluesky.publish(publish_request(alice, f"post {n}"))

    assert calls.count("com.atproto.server.createSession") == 1


async def test_an_expired_access_token_is_refreshed_not_logged_in_again(
    bluesky: Bluesky, alice: Account, calls: list[str]
) -> None:
    await bluesky.publish(publish_request(alice, "before"))
    [(key, session)] = [
        (k, s) for k, s in bluesky.sessions._sessions.items() if k[0] == alice.account_id
    ]
    bluesky.sessions._sessions[key] = replace(session, access_jwt=session.access_jwt[:-4] + "AAAA")

    await bluesky.publish(publish_request(alice, "after"))

    assert calls.count("com.atproto.server.createSession") == 1
    assert calls.count("com.atproto.server.refreshSession") == 1


async def test_a_wrong_app_password_is_auth_expired(bluesky: Bluesky, alice: Account) -> None:
    request = publish_request(replace(alice, password="wrong-password"))

    with pytest.raises(AuthExpired):
        await bluesky.publish(request)


async def test_text_the_pds_refuses_is_rejected(bluesky: Bluesky, alice: Account) -> None:
    with pytest.raises(Rejected) as raised:
        await bluesky.publish(publish_request(alice, "a" * 301))

    assert "grapheme" in raised.value.message


# -- answers a local PDS does not give on demand -------------------------------------------------

SESSION = {"did": "did:plc:abc", "handle": "a.test", "accessJwt": "acc", "refreshJwt": "ref"}


def scripted(create: httpx.Response) -> tuple[Bluesky, FakePlatform]:
    platform = FakePlatform(
        {
            ("POST", "/xrpc/com.atproto.server.createSession"): answer(200, SESSION),
            ("POST", "/xrpc/com.atproto.repo.createRecord"): lambda r: create,
            ("GET", "/xrpc/com.atproto.repo.getRecord"): answer(
                400, {"error": "RecordNotFound", "message": "Could not locate record"}
            ),
        }
    )
    settings = Settings(environment="test", bluesky_api_base="https://pds.test")
    return Bluesky(settings, platform.client()), platform


async def test_429_waits_until_the_announced_reset(alice: Account) -> None:
    reset = clock.now().timestamp() + 900
    bluesky, _ = scripted(
        httpx.Response(
            429,
            json={"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"},
            headers={
                "ratelimit-limit": "5000",
                "ratelimit-remaining": "0",
                "ratelimit-reset": str(int(reset)),
                "ratelimit-policy": "5000;w=3600",
            },
        )
    )

    with pytest.raises(RateLimited) as raised:
        await bluesky.publish(publish_request(alice))

    assert 890 < raised.value.retry_after <= 900


async def test_a_dropped_connection_after_sending_is_outcome_unknown(alice: Account) -> None:
    bluesky, platform = scripted(httpx.Response(200, json={"uri": "at://x", "cid": "c"}))
    await bluesky.find_published(publish_request(alice))  # logs in
    platform.drop_next()

    with pytest.raises(OutcomeUnknown):
        await bluesky.publish(publish_request(alice))


async def test_a_5xx_for_a_record_that_does_not_exist_is_transient(alice: Account) -> None:
    from herald_common.platforms.errors import Transient

    bluesky, platform = scripted(
        httpx.Response(
            500, json={"error": "InternalServerError", "message": "Internal Server Error"}
        )
    )

    with pytest.raises(Transient):
        await bluesky.publish(publish_request(alice))

    assert len(platform.received("/xrpc/com.atproto.repo.getRecord")) == 1


async def test_a_dropped_upload_is_transient_and_creates_nothing(alice: Account) -> None:
    bluesky, platform = scripted(httpx.Response(200, json={"uri": "at://x", "cid": "c"}))
    await bluesky.find_published(publish_request(alice))  # logs in
    media = MemoryMedia()
    platform.drop_next()

    with pytest.raises(Transient):  # only a stray blob may exist, never a post
        await bluesky.publish(with_pictures(publish_request(alice), media, media.add()))

    [upload] = platform.received("/xrpc/com.atproto.repo.uploadBlob")
    assert upload.headers["content-type"] == "image/png" and upload.body == image_bytes()
    assert platform.received("/xrpc/com.atproto.repo.createRecord") == []
    assert media.remembered == {}


# -- validate ------------------------------------------------------------------------------------


def test_validate_counts_graphemes_and_bytes(bluesky: Bluesky) -> None:
    assert bluesky.validate(PostContent("👨‍👩‍👧‍👦" * 100)) == []  # 100 graphemes, 2,500 bytes
    [too_long] = bluesky.validate(PostContent("a" * 301))
    assert too_long.message == "Bluesky allows 300 characters; this post has 301."
    [too_big] = bluesky.validate(PostContent("👨‍👩‍👧‍👦" * 121))
    assert "3000 bytes" in too_big.message


def test_validate_names_what_bluesky_lacks(bluesky: Bluesky) -> None:
    problems = bluesky.validate(PostContent("hi", content_warning="cw", visibility="private"))
    assert [p.field for p in problems] == ["content_warning", "visibility"]


def test_validate_holds_pictures_to_the_embed_lexicon(bluesky: Bluesky) -> None:
    picture = media_of(image_bytes("image/png"), alt_text="a" * 5000)
    assert bluesky.validate(PostContent("", media=(picture,) * 4)) == []  # no text is fine

    [too_many] = bluesky.validate(PostContent("hi", media=(picture,) * 5))
    assert too_many.field == "media_ids"
    assert too_many.message == "Bluesky allows 4 pictures per post; this post has 5."
    too_big = replace(picture, size_bytes=1_000_001)
    tiff = replace(picture, content_type="image/tiff")
    problems = bluesky.validate(PostContent("hi", media=(picture, too_big, tiff)))
    assert [(p.field, p.message.split(";")[0]) for p in problems] == [
        ("media_ids[1]", "Bluesky takes pictures up to 1 MB"),
        ("media_ids[2]", "Bluesky takes JPEG, PNG, GIF, WEBP pictures"),
    ]


def test_record_keys_are_valid_tids_stable_per_target_and_part() -> None:
    request = publish_request(Account("a.test", "pw", "did:plc:a", uuid4()))
    keys = [record_key(request, part) for part in range(3)]

    assert keys == [record_key(request, part) for part in range(3)]
    assert len(set(keys)) == 3 and keys == sorted(keys)  # a thread's parts sort in order
    assert all(len(k) == 13 and k[0] in "234567abcdefghij" for k in keys)
    other = replace(request, idempotency_key="herald-other", target_id=new_id())
    assert record_key(other) != keys[0]

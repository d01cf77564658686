"""The Mastodon adapter against the local fake Mastodon over real HTTP, and Mastodon's counting.

The adapter is built with the shared client factory, so these run through the aiohttp
transport Herald uses in production; the transport-failure tests also run over httpx's own
transport, since DESIGN.md keeps the transport swappable.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from email.utils import format_datetime
from uuid import UUID, uuid4

import httpx
import pytest

from herald_common import clock
from herald_common.http import create_http_client
from herald_common.platforms.base import (
    AccountCredentials,
    ContentProblem,
    Media,
    NoMedia,
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
from herald_common.platforms.mastodon import MAX_CHARACTERS, Mastodon
from herald_common.platforms.mastodon_text import (
    extract_mastodon_mentions,
    extract_mastodon_urls,
    mastodon_length,
)
from herald_common.platforms.text import grapheme_count
from herald_common.settings import Settings
from tests.fakes.http import FakePlatform, answer
from tests.fakes.mastodon import FakeMastodon
from tests.fakes.media import MemoryMedia

ALICE = "alice-token"
BOB = "bob-token"
# Waits between looks at a picture still processing, short so the tests do not sleep.
QUICK_POLLS = (0.0, 0.01, 0.01)


@pytest.fixture
def fake() -> Iterator[FakeMastodon]:
    with FakeMastodon(tokens={ALICE: "alice", BOB: "bob"}) as server:
        yield server


@pytest.fixture
def mastodon_settings(fake: FakeMastodon) -> Settings:
    # No database or Redis: the adapter needs only its HTTP settings.
    return Settings(environment="test", log_format="console", mastodon_api_base=fake.base_url)


@pytest.fixture
async def http(mastodon_settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    client = create_http_client(mastodon_settings)
    yield client
    await client.aclose()


@pytest.fixture
def mastodon(mastodon_settings: Settings, http: httpx.AsyncClient) -> Mastodon:
    return Mastodon(mastodon_settings, http, media_poll_delays=QUICK_POLLS)


@pytest.fixture
def pictures() -> MemoryMedia:
    return MemoryMedia()


@pytest.fixture
def restore_clock() -> Iterator[None]:
    yield
    clock.reset()


def publish_request(
    text: str = "Hello from Herald",
    *,
    key: str = "target-1",
    token: str | None = ALICE,
    instance_url: str | None = None,
    media: Sequence[Media] = (),
    source: MemoryMedia | None = None,
    uploaded: Mapping[UUID, str] | None = None,
) -> PublishRequest:
    return PublishRequest(
        account=AccountCredentials(
            account_id=uuid4(),
            workspace_id=uuid4(),
            external_id="1",
            handle="alice",
            access_token=token,
            instance_url=instance_url,
        ),
        content=PostContent(text, media),
        idempotency_key=key,
        media_source=source if source is not None else NoMedia(),
        uploaded=uploaded or {},
    )


def picture(
    content_type: str = "image/png",
    *,
    size_bytes: int = 1000,
    width: int = 8,
    height: int = 6,
    alt_text: str | None = None,
) -> Media:
    """A picture as Herald stored it, for validate (which never reads bytes)."""
    return Media(uuid4(), content_type, size_bytes, width, height, alt_text)


def uploads(fake: FakeMastodon) -> list[int | None]:
    """The answers to every upload the fake received."""
    return [r.status_code for r in fake.requests if r.path == "/api/v2/media"]


def status_posts(fake: FakeMastodon) -> list[int | None]:
    return [r.status_code for r in fake.requests if r.path == "/api/v1/statuses"]


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# -- publish -------------------------------------------------------------------------------


async def test_publish_creates_one_status_and_returns_its_id_and_url(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    published = await mastodon.publish(publish_request("Hello from Herald"))

    [status] = fake.statuses
    assert status.text == "Hello from Herald"
    assert status.visibility == "public"
    assert published.remote_id == status.id
    assert published.remote_url == f"https://mastodon.test/@alice/{status.id}"


async def test_publish_uploads_each_picture_with_its_alt_text_and_attaches_them_in_order(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    square = pictures.add("image/png", alt_text="A red square")
    photo = pictures.add("image/jpeg", width=20, height=10)

    await mastodon.publish(publish_request("With pictures", media=[square, photo], source=pictures))

    [status] = fake.statuses
    uploaded = {m.id: m for m in fake.media}
    assert status.media_ids == (pictures.remembered[square.id], pictures.remembered[photo.id])
    first, second = (uploaded[m] for m in status.media_ids)
    assert (first.content_type, first.description) == ("image/png", "A red square")
    assert (second.content_type, second.width, second.description) == ("image/jpeg", 20, None)
    assert first.status_id == second.status_id == status.id


async def test_retry_with_the_same_idempotency_key_returns_the_first_status(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    first = await mastodon.publish(publish_request(key="target-7"))
    again = await mastodon.publish(publish_request(key="target-7"))

    assert again == first
    assert len(fake.statuses) == 1
    assert [r.idempotency_key for r in fake.requests] == ["target-7", "target-7"]


async def test_idempotency_keys_belong_to_one_account(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    await mastodon.publish(publish_request(key="same", token=ALICE))
    await mastodon.publish(publish_request(key="same", token=BOB))

    assert len({status.account_id for status in fake.statuses}) == 2


async def test_the_accounts_instance_url_wins_over_the_setting(
    mastodon_settings: Settings, http: httpx.AsyncClient, fake: FakeMastodon
) -> None:
    nowhere = f"http://127.0.0.1:{unused_port()}"
    mastodon = Mastodon(mastodon_settings.model_copy(update={"mastodon_api_base": nowhere}), http)

    await mastodon.publish(publish_request(instance_url=fake.base_url + "/"))

    assert len(fake.statuses) == 1


async def test_post_over_the_limit_is_rejected_with_mastodons_message(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    with pytest.raises(Rejected) as raised:
        await mastodon.publish(publish_request("a" * 501))

    assert raised.value.http_status == 422
    assert "Text character limit of 500 exceeded" in raised.value.message
    assert fake.statuses == []


async def test_long_url_counts_as_23_characters_for_validate_and_mastodon(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    text = "Read this: https://example.com/" + "a" * 570
    assert len(text) > 600

    assert mastodon.validate(PostContent(text)) == []
    await mastodon.publish(publish_request(text))
    assert len(fake.statuses) == 1


async def test_revoked_token_is_auth_expired(mastodon: Mastodon, fake: FakeMastodon) -> None:
    fake.revoke_token(ALICE)

    with pytest.raises(AuthExpired) as raised:
        await mastodon.publish(publish_request())

    assert raised.value.http_status == 401
    assert "The access token is invalid" in raised.value.message


async def test_forbidden_is_auth_expired(mastodon: Mastodon, fake: FakeMastodon) -> None:
    fake.fail_next(status_code=403, error="This action is outside the authorized scopes")

    with pytest.raises(AuthExpired):
        await mastodon.publish(publish_request())


async def test_account_without_a_token_is_auth_expired_without_a_request(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    with pytest.raises(AuthExpired):
        await mastodon.publish(publish_request(token=None))

    assert fake.requests == []


async def test_rate_limit_waits_until_the_announced_reset(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    fake.rate_limit_next(reset_after=timedelta(seconds=90))

    with pytest.raises(RateLimited) as raised:
        await mastodon.publish(publish_request())

    assert 80 < raised.value.retry_after <= 90
    assert raised.value.http_status == 429
    assert fake.statuses == []


async def test_rate_limit_wait_is_measured_on_herald_clock(
    mastodon: Mastodon, fake: FakeMastodon, restore_clock: None
) -> None:
    # The fake reads Herald's clock too, so with the clock moved 4 hours ahead of the wall
    # clock the reset is 4 hours "later"; measured against the wall clock the wait would look
    # 4 hours longer than announced.
    clock.advance(timedelta(hours=4))
    fake.rate_limit_next(reset_after=timedelta(minutes=10))

    with pytest.raises(RateLimited) as raised:
        await mastodon.publish(publish_request())

    assert 590 < raised.value.retry_after <= 600


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        ("120", 120.0),  # delay-seconds
        ("date", 300.0),  # an HTTP date five minutes ahead on Herald's clock
        ("soon", 60.0),  # unreadable: the default wait
        ("0", 1.0),  # never less than a second
    ],
)
async def test_a_proxys_retry_after_is_read_when_mastodon_names_no_reset(
    restore_clock: None, retry_after: str, expected: float
) -> None:
    clock.advance(timedelta(hours=2))  # the wait is measured on Herald's clock
    if retry_after == "date":
        retry_after = format_datetime(clock.now() + timedelta(minutes=5), usegmt=True)
    proxy = FakePlatform(
        {
            ("POST", "/api/v1/statuses"): answer(
                429, {"error": "Too many requests"}, {"Retry-After": retry_after}
            )
        }
    )
    settings = Settings(environment="test", mastodon_api_base="https://mastodon.test")
    mastodon = Mastodon(settings, proxy.client())

    with pytest.raises(RateLimited) as raised:
        await mastodon.publish(publish_request())

    assert raised.value.retry_after == pytest.approx(expected, abs=1.0)


async def test_server_error_is_transient_and_creates_nothing(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    fake.fail_next(status_code=503)

    with pytest.raises(Transient) as raised:
        await mastodon.publish(publish_request())

    assert raised.value.http_status == 503
    assert raised.value.retry_after is None
    assert fake.statuses == []
    await mastodon.publish(publish_request())
    assert len(fake.statuses) == 1


async def test_a_server_errors_retry_after_travels_with_it(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    fake.fail_next(status_code=503, retry_after="120")

    with pytest.raises(Transient) as raised:
        await mastodon.publish(publish_request())

    assert raised.value.retry_after == 120


# -- pictures ----------------------------------------------------------------------------------


async def test_picture_processed_in_the_background_is_attached_once_mastodon_is_done(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    fake.process_uploads_in_background(pending_polls=2)
    gif = pictures.add("image/gif")

    await mastodon.publish(publish_request(media=[gif], source=pictures))

    assert uploads(fake) == [202]
    polls = [r.status_code for r in fake.requests if r.path.startswith("/api/v1/media/")]
    assert polls == [206, 206, 200]
    [status] = fake.statuses
    assert status.media_ids == (pictures.remembered[gif.id],)


async def test_picture_still_processing_after_the_wait_is_transient_and_no_status_is_sent(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    fake.process_uploads_in_background(pending_polls=None)
    gif = pictures.add("image/gif")

    with pytest.raises(Transient) as raised:
        await mastodon.publish(publish_request(media=[gif], source=pictures))

    assert "still processing" in raised.value.message
    assert status_posts(fake) == []
    # Remembered anyway, so the retry attaches this upload instead of making another.
    [upload] = fake.media
    assert pictures.remembered == {gif.id: upload.id}


async def test_retry_while_the_picture_is_still_processing_is_transient_not_rejected(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    fake.process_uploads_in_background(pending_polls=None)
    gif = pictures.add("image/gif")
    request = publish_request(media=[gif], source=pictures)
    with pytest.raises(Transient):
        await mastodon.publish(request)
    retry = replace(request, uploaded=dict(pictures.remembered))

    with pytest.raises(Transient) as raised:
        await mastodon.publish(retry)

    assert raised.value.http_status == 422
    assert "not finished processing" in raised.value.message
    fake.finish_processing()
    await mastodon.publish(retry)
    assert len(fake.statuses) == 1
    assert uploads(fake) == [202]


async def test_status_failure_after_the_upload_leaves_the_upload_remembered(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    square = pictures.add()
    fake.fail_next(status_code=503)

    with pytest.raises(Transient):
        await mastodon.publish(publish_request(media=[square], source=pictures))

    [upload] = fake.media
    assert pictures.remembered == {square.id: upload.id}
    assert status_posts(fake) == [503]


async def test_retry_attaches_the_earlier_upload_without_uploading_again(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    square = pictures.add()
    request = publish_request(media=[square], source=pictures)
    fake.fail_next(status_code=503)
    with pytest.raises(Transient):
        await mastodon.publish(request)

    await mastodon.publish(replace(request, uploaded=dict(pictures.remembered)))

    [upload] = fake.media
    [status] = fake.statuses
    assert status.media_ids == (upload.id,)
    assert uploads(fake) == [200]
    assert pictures.reads == [square.id]


async def test_find_published_after_a_dropped_answer_reuses_the_uploads(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    square = pictures.add()
    request = publish_request(key="target-12", media=[square], source=pictures)
    sent_at = clock.now()
    fake.drop_next()
    with pytest.raises(OutcomeUnknown):
        await mastodon.publish(request)

    found = await mastodon.find_published(
        replace(request, first_attempt_at=sent_at, uploaded=dict(pictures.remembered))
    )

    [status] = fake.statuses
    assert found is not None
    assert found.remote_id == status.id
    assert uploads(fake) == [200]


async def test_file_mastodon_cannot_read_as_a_picture_is_rejected(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    square = pictures.add()
    pictures.files[square.id] = b"%PDF-1.7 not a picture"

    with pytest.raises(Rejected) as raised:
        await mastodon.publish(publish_request(media=[square], source=pictures))

    assert raised.value.http_status == 422
    assert "File content type is invalid" in raised.value.message
    assert fake.media == []
    assert status_posts(fake) == []


async def test_upload_over_the_media_rate_limit_waits_for_the_window_to_reset(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    fake.media_upload_limit = 1
    await mastodon.publish(publish_request(key="k1", media=[pictures.add()], source=pictures))

    with pytest.raises(RateLimited) as raised:
        await mastodon.publish(publish_request(key="k2", media=[pictures.add()], source=pictures))

    assert raised.value.http_status == 429
    # rack_attack's windows are 30 minutes, aligned to the epoch.
    assert 0 < raised.value.retry_after <= 30 * 60
    assert uploads(fake) == [200, 429]
    assert len(fake.statuses) == 1


async def test_upload_with_a_revoked_token_is_auth_expired(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    fake.revoke_token(ALICE)

    with pytest.raises(AuthExpired) as raised:
        await mastodon.publish(publish_request(media=[pictures.add()], source=pictures))

    assert raised.value.http_status == 401
    assert uploads(fake) == [401]
    assert status_posts(fake) == []


async def test_upload_server_error_is_transient_and_nothing_is_remembered(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    fake.fail_next_upload(status_code=502, error="Bad Gateway")

    with pytest.raises(Transient) as raised:
        await mastodon.publish(publish_request(media=[pictures.add()], source=pictures))

    assert raised.value.message == "Mastodon answered 502: Bad Gateway"
    assert pictures.remembered == {}
    assert status_posts(fake) == []


def test_uploads_are_reused_only_well_before_mastodon_deletes_unattached_ones() -> None:
    # Mastodon's vacuum deletes uploads left unattached for a day.
    assert Mastodon.media_reference_ttl is not None
    assert Mastodon.media_reference_ttl <= timedelta(hours=12)


async def test_picture_of_another_account_is_rejected_with_mastodons_message(
    mastodon: Mastodon, fake: FakeMastodon, pictures: MemoryMedia
) -> None:
    square = pictures.add()
    await mastodon.publish(publish_request(key="bob", token=BOB, media=[square], source=pictures))
    bobs = pictures.remembered[square.id]

    with pytest.raises(Rejected) as raised:
        await mastodon.publish(
            publish_request(
                key="alice", media=[square], source=pictures, uploaded={square.id: bobs}
            )
        )

    assert raised.value.message.endswith(
        f"Media {bobs} not found or already attached to another post"
    )


# -- transport failures, over both transports -------------------------------------------------

TRANSPORTS = {
    "aiohttp": None,  # create_http_client's default, what production uses
    "httpcore": httpx.AsyncHTTPTransport,
}


@pytest.fixture(params=list(TRANSPORTS))
async def any_transport_mastodon(
    request: pytest.FixtureRequest, mastodon_settings: Settings
) -> AsyncIterator[Mastodon]:
    transport_class = TRANSPORTS[request.param]
    quick = mastodon_settings.model_copy(update={"http_timeout_seconds": 0.5})
    client = create_http_client(quick, transport_class() if transport_class else None)
    yield Mastodon(quick, client)
    await client.aclose()


async def test_unreachable_server_is_transient(any_transport_mastodon: Mastodon) -> None:
    request = publish_request(instance_url=f"http://127.0.0.1:{unused_port()}")

    with pytest.raises(Transient):
        await any_transport_mastodon.publish(request)


async def test_connection_dropped_after_accept_is_outcome_unknown(
    any_transport_mastodon: Mastodon, fake: FakeMastodon
) -> None:
    fake.drop_next()

    with pytest.raises(OutcomeUnknown) as raised:
        await any_transport_mastodon.publish(publish_request())

    assert len(fake.statuses) == 1
    assert fake.requests[-1].status_code is None
    assert "the connection closed after the request was sent, so its answer was lost" in (
        raised.value.message
    )


async def test_answer_slower_than_the_timeout_is_outcome_unknown(
    any_transport_mastodon: Mastodon, fake: FakeMastodon
) -> None:
    fake.delay_next(seconds=1.5)

    with pytest.raises(OutcomeUnknown):
        await any_transport_mastodon.publish(publish_request())

    assert len(fake.statuses) == 1


# -- find_published --------------------------------------------------------------------------


async def test_find_published_after_a_dropped_answer_returns_the_original_status(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    request = publish_request(key="target-9")
    sent_at = clock.now()
    fake.drop_next()
    with pytest.raises(OutcomeUnknown):
        await mastodon.publish(request)

    found = await mastodon.find_published(replace(request, first_attempt_at=sent_at))

    [status] = fake.statuses
    assert found is not None
    assert found.remote_id == status.id


async def test_find_published_creates_the_status_once_when_the_first_attempt_never_landed(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    request = publish_request(key="target-10")

    found = await mastodon.find_published(replace(request, first_attempt_at=clock.now()))
    found_again = await mastodon.find_published(replace(request, first_attempt_at=clock.now()))

    [status] = fake.statuses
    assert found is not None
    assert found.remote_id == status.id
    assert found_again == found


async def test_find_published_cannot_tell_once_mastodon_may_have_forgotten_the_key(
    mastodon: Mastodon, fake: FakeMastodon, restore_clock: None
) -> None:
    request = publish_request()
    sent_at = clock.now()
    await mastodon.publish(request)
    clock.advance(timedelta(minutes=56))

    with pytest.raises(CannotTell):
        await mastodon.find_published(replace(request, first_attempt_at=sent_at))

    assert len(fake.requests) == 1  # no blind second post


def as_alice(fake: FakeMastodon, request: PublishRequest) -> PublishRequest:
    """``request`` with Alice's account id on the fake, where find_later lists statuses."""
    return replace(
        request, account=replace(request.account, external_id=fake.account_for(ALICE).id)
    )


async def test_find_later_reads_the_status_back_hours_later_without_sending_anything(
    mastodon: Mastodon, fake: FakeMastodon, restore_clock: None
) -> None:
    request = as_alice(fake, publish_request("Hello <again> & https://example.com/x"))
    sent_at = clock.now()
    await mastodon.publish(publish_request("An older post of Alice's", key="target-0"))
    fake.drop_next()
    with pytest.raises(OutcomeUnknown):
        await mastodon.publish(request)
    await mastodon.publish(publish_request("A later post of Alice's", key="target-2"))
    clock.advance(timedelta(hours=3))  # the idempotency key is long forgotten
    posted = len(fake.statuses)

    found = await mastodon.find_later(replace(request, first_attempt_at=sent_at))

    ours = next(s for s in fake.statuses if s.idempotency_key == "target-1")
    assert found is not None
    assert (found.remote_id, found.remote_url) == (
        ours.id,
        f"https://mastodon.test/@alice/{ours.id}",
    )
    assert len(fake.statuses) == posted
    assert [r.method for r in fake.requests[-3:]] == ["GET"] * 3


async def test_find_later_finds_nothing_for_a_post_that_never_landed(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    await mastodon.publish(publish_request("Something else", key="target-0"))
    fake.fail_next(status_code=503)
    request = as_alice(fake, publish_request("Hello from Herald", key="target-3"))
    with pytest.raises(Transient):
        await mastodon.publish(request)

    assert await mastodon.find_later(replace(request, first_attempt_at=clock.now())) is None
    assert [s.text for s in fake.statuses] == ["Something else"]


async def test_find_published_cannot_tell_without_the_first_attempt_time(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    with pytest.raises(CannotTell):
        await mastodon.find_published(publish_request())

    assert fake.requests == []


async def test_find_published_reports_rate_limits_like_publish(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    fake.rate_limit_next(reset_after=timedelta(seconds=30))

    with pytest.raises(RateLimited):
        await mastodon.find_published(replace(publish_request(), first_attempt_at=clock.now()))


# -- the fake itself (other suites rely on it behaving like Mastodon) --------------------------


async def test_fake_forgets_idempotency_keys_after_an_hour(
    mastodon: Mastodon, fake: FakeMastodon, restore_clock: None
) -> None:
    await mastodon.publish(publish_request(key="k"))
    clock.advance(timedelta(hours=1, seconds=1))
    await mastodon.publish(publish_request(key="k"))

    assert len(fake.statuses) == 2


async def test_fake_lists_the_accounts_statuses_newest_first(
    mastodon: Mastodon, fake: FakeMastodon, http: httpx.AsyncClient
) -> None:
    for n in range(3):
        await mastodon.publish(publish_request(f"post {n}", key=f"k{n}"))
    auth = {"Authorization": f"Bearer {ALICE}"}

    me = await http.get(f"{fake.base_url}/api/v1/accounts/verify_credentials", headers=auth)
    listed = await http.get(
        f"{fake.base_url}/api/v1/accounts/{me.json()['id']}/statuses?limit=2", headers=auth
    )

    assert me.json()["username"] == "alice"
    assert [s["content"] for s in listed.json()] == ["<p>post 2</p>", "<p>post 1</p>"]


async def test_fake_lists_attached_pictures_with_their_alt_text(
    mastodon: Mastodon, fake: FakeMastodon, http: httpx.AsyncClient, pictures: MemoryMedia
) -> None:
    square = pictures.add(alt_text="A red square")
    await mastodon.publish(publish_request(media=[square], source=pictures))
    [status] = fake.statuses
    auth = {"Authorization": f"Bearer {ALICE}"}

    listed = await http.get(
        f"{fake.base_url}/api/v1/accounts/{status.account_id}/statuses", headers=auth
    )
    asked = await http.get(f"{fake.base_url}/api/v1/media/{status.media_ids[0]}", headers=auth)

    [attachment] = listed.json()[0]["media_attachments"]
    assert attachment["id"] == status.media_ids[0]
    assert attachment["description"] == "A red square"
    assert attachment["url"] is not None
    assert asked.status_code == 404  # attached: no longer an upload of the account's


# -- validate --------------------------------------------------------------------------------


def test_validate_counts_what_mastodon_counts(mastodon: Mastodon) -> None:
    assert mastodon.validate(PostContent("👨‍👩‍👧‍👦" * 500)) == []
    assert mastodon.validate(PostContent("a" * 512)) == [
        ContentProblem(
            "content", "Mastodon allows 500 characters (URLs count as 23); this post has 512."
        )
    ]


def test_validate_needs_text_or_an_attachment(mastodon: Mastodon) -> None:
    [problem] = mastodon.validate(PostContent("  \n "))
    assert problem.field == "content"
    assert mastodon.validate(PostContent("", media=[picture()])) == []


def test_validate_allows_four_pictures(mastodon: Mastodon) -> None:
    assert mastodon.validate(PostContent("pics", media=[picture() for _ in range(4)])) == []
    [problem] = mastodon.validate(PostContent("pics", media=[picture() for _ in range(5)]))
    assert problem == ContentProblem(
        "media_ids", "Mastodon allows 4 pictures per post; this post has 5."
    )


def test_validate_names_each_picture_over_mastodons_limits(mastodon: Mastodon) -> None:
    at_limits = [
        picture("image/webp", size_bytes=16 * 1024 * 1024, alt_text="a" * 1500),
        picture("image/gif", width=1280, height=720),
        picture(width=7680, height=4320),
    ]
    over = [
        picture(size_bytes=16 * 1024 * 1024 + 1),
        picture(alt_text="a" * 1501),
        picture("image/gif", width=1281, height=720),
        picture(width=7681, height=4320),
    ]

    assert mastodon.validate(PostContent("pics", media=at_limits)) == []
    problems = mastodon.validate(PostContent("pics", media=over))
    messages = {p.field: p.message for p in problems}
    assert len(problems) == len(messages) == 4
    assert "up to 16 MiB" in messages["media_ids[0]"]
    assert "1500 characters of alt text" in messages["media_ids[1]"]
    assert "GIFs up to 921,600 pixels" in messages["media_ids[2]"]
    assert "7681 x 4320" in messages["media_ids[3]"]


def test_validate_refuses_picture_types_mastodon_does_not_take(mastodon: Mastodon) -> None:
    [problem] = mastodon.validate(PostContent("pic", media=[picture("image/tiff")]))

    assert problem.field == "media_ids[0]"


# -- text counting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hello", 5),
        ("👨‍👩‍👧‍👦", 1),  # ZWJ family: 7 code points
        ("👍🏽", 1),  # emoji with skin-tone modifier
        ("🇫🇷🇩🇪", 2),  # two regional-indicator flags
        ("e\u0301", 1),  # e + combining acute accent
        ("\u1100\u1161\u11a8", 1),  # Hangul jamo forming one syllable
        ("漢字かな", 4),
        ("", 0),
    ],
)
def test_grapheme_count(text: str, expected: int) -> None:
    assert grapheme_count(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://example.com/" + "x" * 200, 23),
        ("a https://example.com b http://example.org/path", 2 + 23 + 3 + 23),
        ("see https://example.com/a.", 4 + 23 + 1),  # full stop is not part of the URL
        ("(https://en.wikipedia.org/wiki/Foo_(bar))", 1 + 23 + 1),
        ("example.com has no scheme", 25),  # Mastodon counts schemeless domains as text
        ("nohttps://example.com", 21),  # glued to a word: not a URL
        ("@alice@mastodon.social hi", 9),  # remote mention costs only @alice
        ("@alice hi", 9),
        ("mail bob@example.com", 20),  # an e-mail address is not a mention
        ("https://mastodon.social/@alice@example.org", 23),  # a mention inside a URL
        ("   \n ", 0),
        ("\ufeffhello\uffff", 7),  # kept, one grapheme cluster each
        ("@\ufeffalice", 7),  # not a mention: nobody is notified
        ("👨‍👩‍👧‍👦 https://example.com", 1 + 1 + 23),
        # Mastodon's path rule: any non-space character, so a Japanese path is one link.
        ("https://ja.wikipedia.org/wiki/東京都", 23),
        ("https://example.com/パス」 です", 23 + 4),  # 」 may not end a path ...
        ("https://example.com/「引用」です", 23),  # ... but may be inside one
        ('https://example.com/say"hi"ok', 23),
        ("https://example.com/?q=東京", 23),  # non-ASCII in a query
        # A domain on an IDN TLD twitter-text knows, with no path.
        ("https://example.中国", 23),
        ("https://例え.テスト/", 15),  # no such TLD: "テスト" is not on the list
        # ... and a TLD that is not on the list is text (23 + 5 for Herald before).
        ("https://example.invalidtld/x", 28),
        ("https://ex_ample.com", 20),  # "_" only in subdomains
        ("https://sub_domain.example.com", 23),
        ("gemini://example.com/capsule", 23),  # Mastodon's extra schemes
        ("ftp://example.com", 17),  # ... but not every scheme
        ("https://t.co/abc?x=1", 23 + 4),  # the gem's t.co rule ends at the slug
        # IDNA 2003 must accept the domain: a label over 63 characters is text ...
        ("https://" + "a" * 64 + ".com", 8 + 64 + 4),
        # ... and so is a code point Unicode 3.2 did not have (U+1F355, 2010), while one it
        # had (U+2603) is fine.
        ("https://\U0001f355.ws/", 13),
        ("https://\u2603.net/", 23),
        # Account::MENTION_RE takes any word characters as the domain of a remote mention.
        ("@user@a", 5),
        # The joiner is no word character in Ruby: the mention ends before it (and the joiner
        # then joins the "r" of "@user").
        ("@user@a\u200db", 5 + 1),
    ],
)
def test_mastodon_length(text: str, expected: int) -> None:
    assert mastodon_length(text) == expected


def test_the_content_warning_counts_as_written() -> None:
    link = "https://example.com/" + "x" * 100

    assert mastodon_length("hi", content_warning=link) == len(link) + 2
    assert mastodon_length(link, content_warning="CW @alice@example.org") == 21 + 23
    # The warning comes first: no link runs on from it into the text.
    assert mastodon_length("example.com", content_warning="see https://") == 12 + 11


# Mastodon's own examples: spec/validators/status_length_validator_spec.rb.
@pytest.mark.parametrize(
    ("text", "content_warning", "allowed"),
    [
        ("", "a" * 501, False),  # content warning over the limit
        ("a" * 501, "", False),  # text over the limit
        ("b" * 481, "a" * 20, False),  # together over the limit
        ("a" * 476 + " http://" + "b" * 30 + ".com/example", "", True),  # URLs count 23
        ("a" * 476 + "http://" + "b" * 30 + ".com/example", "", False),  # not autolinkable
        ("http://example.com/valid?" + "#foo?" * 1000, "", False),  # overly long URL
        ("a" * 493 + " @alice@" + "b" * 30 + ".com", "", True),  # front part of a username
    ],
)
def test_mastodons_own_examples(text: str, content_warning: str, allowed: bool) -> None:
    assert (mastodon_length(text, content_warning) <= MAX_CHARACTERS) is allowed


def test_extract_mastodon_urls_returns_spans_without_trailing_punctuation() -> None:
    text = "Links: https://a.example.com/x?y=1, and https://b.example.org!"
    urls = extract_mastodon_urls(text)

    assert [u.text for u in urls] == ["https://a.example.com/x?y=1", "https://b.example.org"]
    assert all(text[u.start : u.end] == u.text for u in urls)


def test_extract_mastodon_mentions() -> None:
    text = "cc @alice, @bob@example.social and me@example.com, @carol@ex\u200dample.org"

    assert [m.text for m in extract_mastodon_mentions(text)] == [
        "@alice",
        "@bob@example.social",
        "@carol@ex",
    ]


# -- visibility and content warnings ----------------------------------------------------------


async def test_publish_sends_visibility_and_content_warning(
    mastodon: Mastodon, fake: FakeMastodon
) -> None:
    request = publish_request("Spoilers ahead")
    content = replace(request.content, visibility="unlisted", content_warning="Film ending")

    await mastodon.publish(replace(request, content=content))

    [status] = fake.statuses
    assert (status.visibility, status.spoiler_text) == ("unlisted", "Film ending")


def test_validate_counts_the_content_warning_with_the_text(mastodon: Mastodon) -> None:
    assert mastodon.validate(PostContent("a" * 490, content_warning="b" * 10)) == []
    [problem] = mastodon.validate(PostContent("a" * 490, content_warning="b" * 11))
    assert problem.message.endswith("this post has 501 with its content warning.")
    # A link in the warning counts every character: 477 + 24 is over the limit.
    [problem] = mastodon.validate(
        PostContent("a" * 477, content_warning="https://example.com/abcd")
    )
    assert problem.message.endswith("this post has 501 with its content warning.")


def test_validate_refuses_unknown_visibility_and_threads(mastodon: Mastodon) -> None:
    problems = mastodon.validate(PostContent("hi", visibility="friends", thread=("more",)))

    assert [p.field for p in problems] == ["visibility", "thread"]

"""Every time the API accepts: a time with no UTC instant, one past the scheduling bound, or a
zone that is not a real IANA zone is a 422 naming its field, never a 500, and stores nothing."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import clock
from herald_common.settings import Settings
from tests.api.test_bad_input import _counts, _post, assert_problem
from tests.conftest import Tenant


def _days_ahead(days: float) -> str:
    return (clock.now() + timedelta(days=days)).isoformat()


UNREPRESENTABLE = [
    # Both are valid RFC 3339, but their UTC instants fall outside years 1 to 9999.
    {"scheduled_at": "9999-12-31T23:59:59-14:00"},
    {"scheduled_at": "9999-12-31T23:59:59", "timezone": "Pacific/Pago_Pago"},
    {"scheduled_at": "0001-01-01T00:00:00+14:00"},
    {"scheduled_at": "0001-01-01T00:00:00", "timezone": "Asia/Tokyo"},
]


@pytest.mark.parametrize("timing", UNREPRESENTABLE)
async def test_a_time_with_no_utc_instant_is_refused_on_create_update_and_validate(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    timing: dict[str, Any],
) -> None:
    created = await client.post("/v1/posts", json=_post(tenant.account_id, **timing))
    assert_problem(created, 422, "scheduled_at")
    assert await _counts(sessions) == (0, 0)

    post = await client.post("/v1/posts", json=_post(tenant.account_id))
    assert post.status_code == 201, post.text
    url = f"/v1/posts/{post.json()['id']}"
    patched = await client.patch(url, json=timing, headers={"If-Match": '"1"'})
    assert_problem(patched, 422, "scheduled_at")
    assert (await client.get(url)).json()["revision"] == 1

    body = _post(tenant.account_id, **timing)
    del body["scheduled_at"]
    checked = await client.post("/v1/posts/validate", json=body | timing)
    assert checked.status_code == 200, checked.text
    assert "scheduled_at" in [p["field"] for p in checked.json()["problems"]]


async def test_times_beyond_the_scheduling_bound_are_refused(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    bound = settings.schedule_max_ahead_days
    too_far = await client.post(
        "/v1/posts", json=_post(tenant.account_id, scheduled_at=_days_ahead(bound + 1))
    )
    assert_problem(too_far, 422, "scheduled_at")
    assert f"at most {bound} days ahead" in too_far.json()["errors"][0]["message"]
    local = (clock.now() + timedelta(days=bound + 2)).replace(tzinfo=None)
    too_far_locally = await client.post(
        "/v1/posts",
        json=_post(tenant.account_id, scheduled_at=local.isoformat(), timezone="Europe/Paris"),
    )
    assert_problem(too_far_locally, 422, "scheduled_at")
    assert await _counts(sessions) == (0, 0)

    just_inside = await client.post(
        "/v1/posts", json=_post(tenant.account_id, scheduled_at=_days_ahead(bound - 1))
    )
    assert just_inside.status_code == 201, just_inside.text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("scheduled_from", "0001-01-01T00:00:00+14:00"),
        ("scheduled_to", "9999-12-31T23:59:59-14:00"),
        ("scheduled_to", "9999-12-31T23:59:59Z"),
        ("scheduled_from", "2030-01-01T00:00:00"),
    ],
)
async def test_list_filters_refuse_times_herald_cannot_schedule(
    client: httpx.AsyncClient, tenant: Tenant, name: str, value: str
) -> None:
    response = await client.get("/v1/posts", params={name: value})
    assert_problem(response, 422, name)


async def test_list_filters_take_any_time_within_the_bound(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
) -> None:
    created = await client.post("/v1/posts", json=_post(tenant.account_id))
    assert created.status_code == 201, created.text
    window = {
        "scheduled_from": "0001-01-01T00:00:00Z",
        "scheduled_to": _days_ahead(settings.schedule_max_ahead_days - 1),
    }
    listed = await client.get("/v1/posts", params=window)
    assert listed.status_code == 200, listed.text
    assert [p["id"] for p in listed.json()["items"]] == [created.json()["id"]]


@pytest.mark.parametrize("zone", ["posixrules", "Factory", "localtime", "right/UTC", "Mars/Base"])
async def test_only_real_iana_zones_are_accepted(
    client: httpx.AsyncClient,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    zone: str,
) -> None:
    local = (clock.now() + timedelta(days=2)).replace(tzinfo=None, microsecond=0)
    response = await client.post(
        "/v1/posts",
        json=_post(tenant.account_id, scheduled_at=local.isoformat(), timezone=zone),
    )
    assert_problem(response, 422, "timezone")
    assert await _counts(sessions) == (0, 0)


@pytest.mark.parametrize("zone", ["Europe/Paris", "UTC", "America/Argentina/Buenos_Aires"])
async def test_real_iana_zones_are_accepted(
    client: httpx.AsyncClient, tenant: Tenant, zone: str
) -> None:
    local = (clock.now() + timedelta(days=2)).replace(tzinfo=None, microsecond=0)
    response = await client.post(
        "/v1/posts",
        json=_post(tenant.account_id, scheduled_at=local.isoformat(), timezone=zone),
    )
    assert response.status_code == 201, response.text

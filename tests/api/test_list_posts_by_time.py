"""GET /v1/posts?sort=scheduled_at and sort=-scheduled_at: a calendar's order, paged stably
through ties and inserts, served by an index."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from herald_api.posts import repository
from herald_api.posts.schemas import PostSort
from herald_common import clock
from tests.conftest import Tenant

# A time with no sub-second part, so that posts "at the same time" are exactly tied.
BASE = (clock.now() + timedelta(days=2)).replace(microsecond=0)


def at(minutes: int) -> str:
    return (BASE + timedelta(minutes=minutes)).isoformat()


async def create(client: httpx.AsyncClient, tenant: Tenant, minutes: int | None) -> str:
    body: dict[str, Any] = {
        "content": f"at {minutes}",
        "targets": [{"account_id": str(tenant.account_id)}],
    }
    if minutes is None:
        body["draft"] = True
    else:
        body["scheduled_at"] = at(minutes)
    response = await client.post("/v1/posts", json=body)
    assert response.status_code == 201, response.text
    post_id = response.json()["id"]
    assert isinstance(post_id, str)
    return post_id


async def read_page(
    client: httpx.AsyncClient, params: dict[str, Any]
) -> tuple[list[str], str | None]:
    response = await client.get("/v1/posts", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    return [p["id"] for p in body["items"]], body["next_cursor"]


async def test_soonest_first_pages_through_ties_and_inserts_once_each(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    # Created out of time order; three posts share minute 10 (UUIDv7 ids: a < b < c).
    a = await create(client, tenant, 10)
    late = await create(client, tenant, 20)
    draft = await create(client, tenant, None)
    b = await create(client, tenant, 10)
    soon = await create(client, tenant, 5)
    c = await create(client, tenant, 10)

    first, cursor = await read_page(client, {"sort": "scheduled_at", "limit": 2})
    assert first == [soon, a]
    # Added while the calendar is being read: one before the page already read (a cursor
    # continues after where it stopped, so it is not shown) and one more at minute 10, whose
    # id is larger than every other, so it comes after c.
    await create(client, tenant, 1)
    tied_later = await create(client, tenant, 10)
    seen = list(first)
    while cursor is not None:
        ids, cursor = await read_page(
            client, {"sort": "scheduled_at", "limit": 2, "cursor": cursor}
        )
        seen += ids
    assert seen == [soon, a, b, c, tied_later, late, draft]


async def test_latest_first_is_the_exact_reverse_with_undated_posts_first(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    a = await create(client, tenant, 10)
    draft = await create(client, tenant, None)
    b = await create(client, tenant, 10)
    soon = await create(client, tenant, 5)
    c = await create(client, tenant, 10)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"sort": "-scheduled_at", "limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        ids, cursor = await read_page(client, params)
        seen += ids
        if cursor is None:
            break
    assert seen == [draft, c, b, a, soon]


async def test_a_time_window_sorted_by_time_keeps_only_its_posts(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    later = await create(client, tenant, 30)
    inside_late = await create(client, tenant, 20)
    await create(client, tenant, None)
    inside_early = await create(client, tenant, 10)
    await create(client, tenant, 5)
    window = {"scheduled_from": at(10), "scheduled_to": at(30)}
    ascending, _ = await read_page(client, {**window, "sort": "scheduled_at"})
    descending, _ = await read_page(client, {**window, "sort": "-scheduled_at"})
    assert ascending == [inside_early, inside_late]
    assert descending == [inside_late, inside_early]
    assert later not in ascending


async def test_the_default_order_is_still_newest_created_first(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    first = await create(client, tenant, 5)
    second = await create(client, tenant, 20)
    third = await create(client, tenant, 10)
    assert (await read_page(client, {}))[0] == [third, second, first]
    assert (await read_page(client, {"sort": "-created_at"}))[0] == [third, second, first]


async def test_a_cursor_continues_only_the_sort_it_was_made_for(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    for minutes in (5, 10, 20):
        await create(client, tenant, minutes)
    _, by_time = await read_page(client, {"sort": "scheduled_at", "limit": 1})
    _, by_creation = await read_page(client, {"limit": 1})
    assert by_time is not None and by_creation is not None
    for sort, cursor in (
        ("-scheduled_at", by_time),
        ("scheduled_at", by_creation),
        ("-created_at", by_time),
        ("scheduled_at", "bm90IGEgY3Vyc29y"),
    ):
        response = await client.get("/v1/posts", params={"sort": sort, "cursor": cursor})
        assert response.status_code == 422, (sort, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["errors"] == [{"field": "cursor", "message": "Invalid cursor."}]


async def test_an_unknown_sort_is_a_problem_naming_the_choices(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/posts", params={"sort": "content"})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    [problem] = response.json()["errors"]
    assert problem["field"] == "sort"
    assert "'scheduled_at'" in problem["message"] and "'-scheduled_at'" in problem["message"]


async def test_the_sort_is_a_named_enum_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v1/posts"]["get"]
    assert operation["operationId"] == "list_posts"
    [sort] = [p for p in operation["parameters"] if p["name"] == "sort"]
    assert sort["schema"]["$ref"] == "#/components/schemas/PostSort"
    assert spec["components"]["schemas"]["PostSort"]["enum"] == [
        "-created_at",
        "scheduled_at",
        "-scheduled_at",
    ]


@contextmanager
def statements_of(engine: AsyncEngine) -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (and parameters) sent through ``engine`` meanwhile."""
    sent: list[tuple[str, Any]] = []

    def record(*args: Any) -> None:
        _connection, _cursor, statement, parameters = args[:4]
        sent.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


async def test_each_time_sorted_page_is_one_scan_of_the_schedule_index(
    tenant: Tenant, engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """The planner is told to avoid sequential scans and sorts, as it would on a large table;
    if no index held the order (or the query's key differed from the index's), it would have to
    sort anyway."""
    window = BASE, BASE + timedelta(days=1)
    cases = [
        (sort, after, bounds)
        for sort in (PostSort.SCHEDULED_ASC, PostSort.SCHEDULED_DESC)
        for after in (None, (BASE, uuid.UUID(int=0)), (None, uuid.UUID(int=0)))
        for bounds in ((None, None), window)
    ]
    for sort, after, (scheduled_from, scheduled_to) in cases:
        async with sessions() as session:
            with statements_of(engine) as sent:
                await repository.list_posts(
                    session,
                    tenant.workspace_id,
                    statuses=[],
                    scheduled_from=scheduled_from,
                    scheduled_to=scheduled_to,
                    sort=sort,
                    after=after,
                    limit=51,
                )
            [(statement, parameters)] = sent
            connection = await session.connection()
            await connection.execute(text("SET LOCAL enable_seqscan = off"))
            await connection.execute(text("SET LOCAL enable_sort = off"))
            plan = "\n".join(
                row[0]
                for row in await connection.exec_driver_sql(f"EXPLAIN {statement}", parameters)
            )
        case = f"{sort} after={after} window={scheduled_from is not None}"
        assert "ix_posts_workspace_schedule_order" in plan, f"{case}:\n{plan}"
        assert "Sort" not in plan, f"{case}:\n{plan}"

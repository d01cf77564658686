"""Content plans: ``POST /v1/ai/batches`` queues a job on ``herald:ai``; a real arq AI worker
plans it, writes each post and leaves drafts through the posts service; a worker killed
mid-batch loses and doubles nothing when the job runs again."""

from __future__ import annotations

import asyncio
import json
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from arq.connections import RedisSettings, create_pool
from arq.constants import in_progress_key_prefix
from redis.asyncio import Redis
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.ai.tasks import batch_job_id, run_batch
from herald_api.ai.worker import build_worker, open_deps
from herald_common import clock
from herald_common.db.models import AiBatch, AiBatchItem, AiUsage, Post
from herald_common.settings import Settings
from tests.ai import add_account
from tests.conftest import Tenant
from tests.fakes.openai import Error, FakeOpenAI, Refusal, Reply, Text, default_reply
from tests.services import service_env, spawn, stop, wait_for

pytestmark = pytest.mark.usefixtures("redis")


@asynccontextmanager
async def running_ai_worker(settings: Settings) -> AsyncIterator[None]:
    redis = await create_pool(RedisSettings.from_dsn(settings.redis_url))
    async with open_deps(settings, redis) as deps:
        worker = build_worker(settings, redis, deps)
        task = asyncio.gather(worker.async_run(), return_exceptions=True)
        try:
            yield
        finally:
            worker.handle_sig(signal.SIGTERM)
            await task
    await redis.aclose()


def plan_of(count: int, publish_at: list[str] | None = None) -> Any:
    """A responder planning ``count`` posts (``publish_at`` per post, else none)."""

    def reply(body: dict[str, Any]) -> Reply:
        schema = body["response_format"]["json_schema"]["schema"]
        if "posts" in schema["properties"]:
            times = publish_at or [""] * count
            return Text(json.dumps({"posts": [
                {"brief": f"Post {i + 1} of the plan", "publish_at": times[i]}
                for i in range(count)
            ]}))  # fmt: skip
        return default_reply(body)

    return reply


async def _batch(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/ai/batches/{batch_id}")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def _finished(client: httpx.AsyncClient, batch_id: str) -> dict[str, Any]:
    async def done() -> bool:
        return (await _batch(client, batch_id))["status"] in ("succeeded", "failed")

    await wait_for(done, timeout=60)
    return await _batch(client, batch_id)


async def test_a_content_plan_becomes_drafts_made_by_the_posts_service(
    client: httpx.AsyncClient,
    fake_openai: FakeOpenAI,
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    mastodon = await add_account(sessions, tenant.workspace_id, "mastodon")
    soon = (clock.now() + timedelta(days=2)).replace(microsecond=0)
    fake_openai.responder = plan_of(3, [soon.isoformat(), "2020-01-01T09:00:00+00:00", "Monday"])
    response = await client.post(
        "/v1/ai/batches",
        json={
            "plan": "Three posts this week about our spring sale",
            "account_ids": [str(tenant.account_id), str(mastodon)],
            "tone": "warm",
        },
    )
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    assert response.headers["Location"] == f"/v1/ai/batches/{batch_id}"
    assert response.json()["status"] == "queued"
    async with running_ai_worker(settings):
        batch = await _finished(client, batch_id)
    assert batch["status"] == "succeeded", batch
    assert (batch["total"], batch["drafted"], batch["failed"]) == (3, 3, 0)
    drafts = (await client.get("/v1/posts", params={"status": "draft"})).json()["items"]
    assert sorted(d["id"] for d in drafts) == sorted(i["post_id"] for i in batch["items"])
    by_id = {d["id"]: d for d in drafts}
    first = by_id[batch["items"][0]["post_id"]]
    assert first["content"] == "Variant 1: Post 1 of the plan"
    assert {t["account_id"] for t in first["targets"]} == {str(tenant.account_id), str(mastodon)}
    # Only a time still ahead is kept on the draft; a past or unreadable one is left out.
    assert first["scheduled_at"] == soon.isoformat().replace("+00:00", "Z")
    assert by_id[batch["items"][1]["post_id"]]["scheduled_at"] is None
    assert by_id[batch["items"][2]["post_id"]]["scheduled_at"] is None
    async with sessions() as session:
        usage = (await session.scalars(select(AiUsage))).all()
        keys = set(await session.scalars(select(Post.idempotency_key)))
    assert {u.batch_id for u in usage} == {uuid.UUID(batch_id)}
    assert sorted(u.task for u in usage) == ["generate"] * 6 + ["plan"]  # 3 posts x 2 platforms
    assert keys == {f"ai-batch:{batch_id}:{i}" for i in range(3)}


async def test_a_plan_larger_than_allowed_and_unknown_accounts_are_422(
    client: httpx.AsyncClient, settings: Settings, other_tenant: Tenant, tenant: Tenant
) -> None:
    too_many = {"plan": "p", "account_ids": [str(tenant.account_id)],
                "max_posts": settings.ai_batch_max_posts + 1}  # fmt: skip
    response = await client.post("/v1/ai/batches", json=too_many)
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "max_posts"
    response = await client.post(
        "/v1/ai/batches", json={"plan": "p", "account_ids": [str(other_tenant.account_id)]}
    )
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "account_ids[0]"


async def test_a_draft_made_just_before_a_crash_is_found_again_not_made_twice(
    client: httpx.AsyncClient,
    fake_openai: FakeOpenAI,
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    fake_openai.responder = plan_of(3)
    response = await client.post(
        "/v1/ai/batches", json={"plan": "p", "account_ids": [str(tenant.account_id)]}
    )
    batch_id = uuid.UUID(response.json()["id"])
    async with running_ai_worker(settings):
        first = await _finished(client, str(batch_id))
    # The worker died after creating each draft but before marking its item drafted.
    async with sessions.begin() as session:
        await session.execute(
            update(AiBatchItem)
            .where(AiBatchItem.batch_id == batch_id)
            .values(status="written", post_id=None)
        )
        await session.execute(
            update(AiBatch).where(AiBatch.id == batch_id).values(status="drafting")
        )
    async with open_deps(settings, redis) as deps:  # type: ignore[arg-type]  # plain Redis will do
        await run_batch(deps, batch_id)
    again = await _batch(client, str(batch_id))
    assert again["status"] == "succeeded"
    assert [i["post_id"] for i in again["items"]] == [i["post_id"] for i in first["items"]]
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Post)) == 3


async def test_a_worker_killed_mid_batch_loses_and_doubles_nothing(
    client: httpx.AsyncClient,
    fake_openai: FakeOpenAI,
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    fake_openai.responder = plan_of(5)
    fake_openai.hold = lambda body: "Post 3 of the plan" in json.dumps(body["messages"])
    env = service_env(
        settings,
        HERALD_OPENAI_API_KEY=settings.openai_api_key.get_secret_value(),  # type: ignore[union-attr]
        HERALD_OPENAI_BASE_URL=settings.openai_base_url,
        HERALD_OPENAI_RETRY_BACKOFF_SECONDS="0",
    )
    response = await client.post(
        "/v1/ai/batches", json={"plan": "p", "account_ids": [str(tenant.account_id)]}
    )
    batch_id = response.json()["id"]
    worker = spawn("herald-ai-worker", env)
    try:
        # The worker is writing the third post: the first two are drafted.
        assert await asyncio.to_thread(fake_openai.held.wait, 60), "the worker never got there"
        worker.send_signal(signal.SIGKILL)
        worker.wait(30)
    finally:
        stop([worker])
    fake_openai.hold = None
    fake_openai.release.set()
    killed = await _batch(client, batch_id)
    assert killed["status"] == "drafting" and killed["drafted"] == 2
    # arq hands the job to another worker once the dead one's lease lapses (job timeout +
    # 10 s); the test lets it lapse now.
    await redis.delete(in_progress_key_prefix + batch_job_id(uuid.UUID(batch_id)))
    second = spawn("herald-ai-worker", env)
    try:
        batch = await _finished(client, batch_id)
    finally:
        stop([second])
    assert batch["status"] == "succeeded" and batch["drafted"] == 5, batch
    post_ids = [i["post_id"] for i in batch["items"]]
    assert len(set(post_ids)) == 5
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Post)) == 5
    briefs = [r.user.get("brief") for r in fake_openai.requests if isinstance(r.user, dict)]
    # Posts drafted before the kill were not written again; the one in flight was.
    assert briefs.count("Post 1 of the plan") == 1 and briefs.count("Post 2 of the plan") == 1
    assert briefs.count("Post 3 of the plan") == 2


async def test_a_refused_post_fails_alone_and_a_model_down_stops_the_plan(
    client: httpx.AsyncClient,
    fake_openai: FakeOpenAI,
    settings: Settings,
    tenant: Tenant,
) -> None:
    plan = plan_of(3)

    def refuse_the_second(body: dict[str, Any]) -> Reply:
        return Refusal("Not this one.") if "Post 2 of" in json.dumps(body) else plan(body)

    fake_openai.responder = refuse_the_second
    created = await client.post(
        "/v1/ai/batches", json={"plan": "p", "account_ids": [str(tenant.account_id)]}
    )
    async with running_ai_worker(settings):
        batch = await _finished(client, created.json()["id"])
        assert batch["status"] == "succeeded"
        assert [i["status"] for i in batch["items"]] == ["drafted", "failed", "drafted"]
        assert "Not this one." in batch["items"][1]["error"]

        def fail_the_second(body: dict[str, Any]) -> Reply:
            return Error(500) if "Post 2 of" in json.dumps(body) else plan(body)

        fake_openai.responder = fail_the_second
        created = await client.post(
            "/v1/ai/batches", json={"plan": "p", "account_ids": [str(tenant.account_id)]}
        )
        batch = await _finished(client, created.json()["id"])
    assert batch["status"] == "failed" and "HTTP 500" in batch["error"]
    assert [i["status"] for i in batch["items"]] == ["drafted", "planned", "planned"]

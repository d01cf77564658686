"""The AI assistant's limits and failures: the app-wide request and token budgets in Redis
(drained by the model's 429 and rate-limit headers, shared by every API process), retries
of 5xx and timeouts, malformed answers, the monthly quota, and no key at all."""

from __future__ import annotations

import asyncio
import time
import uuid

import httpx
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_api.ai.limits import REQUESTS_KEY, TOKENS_KEY
from herald_common.db.models import AiUsage
from herald_common.roles import Role
from herald_common.settings import Settings
from tests.ai import serve_api
from tests.conftest import Tenant
from tests.fakes.openai import Broken, Error, FakeOpenAI, Hang, Text, posts, rate_limited
from tests.members import make_member

GENERATE = {"brief": "b", "platforms": ["sandbox"]}


async def test_without_a_key_every_ai_endpoint_is_503_saying_how_to_configure_it(
    settings: Settings, tenant: Tenant, redis: Redis
) -> None:
    no_key = settings.model_copy(update={"openai_api_key": None})
    async with (
        serve_api(no_key) as url,
        httpx.AsyncClient(base_url=url, headers=tenant.headers) as http,
    ):
        spec = (await http.get("/openapi.json")).json()
        ai_routes = [
            (method.upper(), path)
            for path, methods in spec["paths"].items()
            if path.startswith("/v1/ai/")
            for method in methods
        ]
        assert len(ai_routes) == 6
        for method, path in ai_routes:
            response = await http.request(
                method, path.replace("{batch_id}", str(uuid.uuid4())), json={}
            )
            assert response.status_code == 503, (method, path, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert "HERALD_OPENAI_API_KEY" in response.json()["detail"]
        ready = await http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ai"] == "not configured"


async def test_readyz_reports_a_configured_ai_and_whether_a_worker_is_alive(
    client: httpx.AsyncClient, redis: Redis
) -> None:
    assert (await client.get("/readyz")).json()["ai"] == "no live AI worker"
    await redis.set("herald:ai:health-check", "alive", ex=10)
    assert (await client.get("/readyz")).json()["ai"] == "ok"


async def test_a_429_with_retry_after_drains_the_shared_bucket_for_every_caller(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI, redis: Redis
) -> None:
    fake_openai.queue(rate_limited(30, "requests"))
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 429
    assert response.json()["type"].endswith("/ai-rate-limited")
    assert 25 <= int(response.headers["Retry-After"]) <= 30
    # The bucket is drained in Redis, for every process: the next call never reaches the model.
    stamp = await redis.hget(REQUESTS_KEY, "ts")  # type: ignore[misc]  # redis-py: sync|async
    drained_until = float(stamp or 0) / 1_000_000
    redis_now = (await redis.time())[0]
    assert drained_until - redis_now > 25
    again = await client.post("/v1/ai/generate", json=GENERATE)
    assert again.status_code == 429
    assert len(fake_openai.requests) == 1


async def test_a_short_retry_after_is_waited_out_and_the_call_tried_again(
    settings: Settings, tenant: Tenant, fake_openai: FakeOpenAI, redis: Redis
) -> None:
    # A small tokens-per-minute budget refills slowly (100 a second), so the bucket's state
    # tells a drained-then-refilled bucket from one debited twice.
    small = settings.model_copy(update={"openai_tokens_per_minute": 6000})
    fake_openai.queue(rate_limited(0.2, "tokens"))
    async with (
        serve_api(small) as url,
        httpx.AsyncClient(base_url=url, headers=tenant.headers) as http,
    ):
        response = await http.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 200, response.text
    assert len(fake_openai.requests) == 2
    # The 429 named the tokens limit: that bucket was drained (then full again at its reset,
    # less the retry's reserve); the requests bucket was not (both calls spent from it).
    tokens_left = float(await redis.hget(TOKENS_KEY, "tokens") or 0)  # type: ignore[misc]
    requests_left = float(await redis.hget(REQUESTS_KEY, "tokens") or 0)  # type: ignore[misc]
    assert tokens_left > 6000 - 1.5 * settings.openai_max_completion_tokens
    assert requests_left < settings.openai_requests_per_minute - 1.5


async def test_rate_limit_headers_at_zero_drain_the_bucket_until_their_reset(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI, redis: Redis
) -> None:
    fake_openai.queue(
        Text(
            posts("fine"),
            headers={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "1m30s"},
        )
    )
    assert (await client.post("/v1/ai/generate", json=GENERATE)).status_code == 200
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 429
    assert 80 <= int(response.headers["Retry-After"]) <= 90
    assert len(fake_openai.requests) == 1


async def test_5xx_is_retried_then_answered_502(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI, settings: Settings, redis: Redis
) -> None:
    fake_openai.queue(Error(500), Text(posts("second time lucky")))
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 200
    assert response.json()["results"][0]["variants"][0]["text"] == "second time lucky"
    fake_openai.reset()
    fake_openai.queue(*[Error(503, "overloaded")] * (settings.openai_max_retries + 1))
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 502
    assert response.json()["type"].endswith("/ai-upstream-error")
    assert len(fake_openai.requests) == settings.openai_max_retries + 1


async def test_a_timeout_is_retried_then_answered_504(
    settings: Settings, tenant: Tenant, fake_openai: FakeOpenAI, redis: Redis
) -> None:
    quick = settings.model_copy(update={"openai_timeout_seconds": 0.3, "openai_max_retries": 1})
    fake_openai.queue(Hang(3), Hang(3))
    async with (
        serve_api(quick) as url,
        httpx.AsyncClient(base_url=url, headers=tenant.headers) as http,
    ):
        response = await http.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 504
    assert response.json()["type"].endswith("/ai-timeout")
    assert len(fake_openai.requests) == 2


async def test_a_client_error_from_the_model_is_502_without_its_message(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI, redis: Redis
) -> None:
    fake_openai.queue(
        Error(
            401,
            "Incorrect API key provided: sk-abc***xyz.",
            "invalid_request_error",
            "invalid_api_key",
        )
    )
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 502
    assert "sk-abc" not in response.text and "invalid_api_key" in response.json()["detail"]
    assert len(fake_openai.requests) == 1  # not retried: it would fail the same way


async def test_a_prompt_too_long_for_the_model_is_422(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI, redis: Redis
) -> None:
    fake_openai.queue(
        Error(
            400,
            "This model's maximum context length is 128000 tokens.",
            "invalid_request_error",
            "context_length_exceeded",
        )
    )
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 422
    assert response.json()["type"].endswith("/ai-input-too-long")


async def test_malformed_json_is_asked_for_once_more_then_502(
    client: httpx.AsyncClient, fake_openai: FakeOpenAI, redis: Redis
) -> None:
    fake_openai.queue(Text('{"variants": [{"text": "cut'), Text(posts("whole this time")))
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 200
    assert len(fake_openai.requests) == 2
    assert "not a JSON object" in fake_openai.requests[1].body["messages"][-1]["content"]
    fake_openai.reset()
    fake_openai.queue(Text("Sure! Here are your posts:"), Text('{"posts": []}'))
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 502
    assert response.json()["type"].endswith("/ai-bad-output")
    fake_openai.reset()
    fake_openai.queue(Broken())
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 502


async def test_an_exhausted_quota_is_429_saying_when_it_resets(
    client: httpx.AsyncClient,
    fake_openai: FakeOpenAI,
    settings: Settings,
    tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    async with sessions.begin() as session:
        session.add(
            AiUsage(
                workspace_id=tenant.workspace_id,
                model="gpt-4o-mini",
                task="generate",
                prompt_tokens=settings.ai_monthly_token_quota - 10,
                completion_tokens=10,
            )
        )
    response = await client.post("/v1/ai/generate", json=GENERATE)
    assert response.status_code == 429
    problem = response.json()
    assert problem["type"].endswith("/ai-quota-exceeded")
    usage = (await client.get("/v1/ai/usage")).json()
    assert usage["remaining_tokens"] == 0
    assert usage["resets_at"].replace("Z", "+00:00")[:19] in problem["detail"].replace(
        "Z", "+00:00"
    )
    assert int(response.headers["Retry-After"]) > 0
    assert fake_openai.requests == []


async def test_usage_is_reported_per_workspace_person_and_key(
    client: httpx.AsyncClient,
    api_url: str,
    fake_openai: FakeOpenAI,
    settings: Settings,
    tenant: Tenant,
    other_tenant: Tenant,
    sessions: async_sessionmaker[AsyncSession],
    redis: Redis,
) -> None:
    editor = await make_member(sessions, settings, tenant.workspace_id, Role.EDITOR)
    viewer = await make_member(sessions, settings, tenant.workspace_id, Role.VIEWER)
    assert (await client.post("/v1/ai/generate", json=GENERATE)).status_code == 200
    async with httpx.AsyncClient(base_url=api_url) as http:
        as_editor = await http.post("/v1/ai/generate", json=GENERATE, headers=editor.headers)
        assert as_editor.status_code == 200
        as_viewer = await http.post("/v1/ai/generate", json=GENERATE, headers=viewer.headers)
        assert as_viewer.status_code == 403
        report = (await http.get("/v1/ai/usage", headers=viewer.headers)).json()
        other = (await http.get("/v1/ai/usage", headers=other_tenant.headers)).json()
    callers = {(c["user_id"], c["api_key_id"] is not None): c for c in report["callers"]}
    assert set(callers) == {(str(editor.user_id), False), (None, True)}
    assert report["used_tokens"] == sum(c["total_tokens"] for c in report["callers"]) > 0
    assert report["quota_tokens"] == settings.ai_monthly_token_quota
    assert report["remaining_tokens"] == report["quota_tokens"] - report["used_tokens"]
    assert other["used_tokens"] == 0 and other["callers"] == []


async def test_two_api_processes_together_never_exceed_the_requests_per_minute_bucket(
    settings: Settings, tenant: Tenant, fake_openai: FakeOpenAI, redis: Redis
) -> None:
    rpm = 4
    fake_openai.rpm = rpm  # the fake refuses a fifth request within the minute, as OpenAI would
    limited = settings.model_copy(
        update={"openai_requests_per_minute": rpm, "openai_max_wait_seconds": 0}
    )
    started = time.monotonic()
    async with (
        serve_api(limited) as first,
        serve_api(limited) as second,
        httpx.AsyncClient(headers=tenant.headers, timeout=30) as http,
    ):
        responses = await asyncio.gather(
                *(http.post(f"{url}/v1/ai/generate", json=GENERATE)
                  for url in (first, second) for _ in range(6))
            )  # fmt: skip
    elapsed = time.monotonic() - started
    statuses = sorted(r.status_code for r in responses)
    # A full bucket of 4, plus what refilled while the test ran (4 a minute).
    allowed = rpm + int(elapsed * rpm / 60)
    assert rpm <= statuses.count(200) <= allowed
    assert set(statuses) <= {200, 429}
    assert len(fake_openai.requests) == statuses.count(200)  # the model never said 429

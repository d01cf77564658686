"""One request against a real OpenAI-compatible endpoint, opt-in: it runs only when
HERALD_OPENAI_API_KEY is set (with HERALD_OPENAI_BASE_URL and HERALD_OPENAI_MODEL for a
server other than OpenAI's), so `make test` never spends tokens or needs the network."""

from __future__ import annotations

import os

import httpx
import pytest
from redis.asyncio import Redis

from herald_common.platforms.base import PostContent
from herald_common.settings import Settings
from tests.ai import read_events, serve_api
from tests.conftest import Tenant

LIVE_KEY = os.environ.get("HERALD_OPENAI_API_KEY")

pytestmark = pytest.mark.skipif(not LIVE_KEY, reason="HERALD_OPENAI_API_KEY is not set")


async def test_a_real_model_writes_variants_that_herald_checks_and_streams(
    settings: Settings, tenant: Tenant, redis: Redis
) -> None:
    live = settings.model_copy(
        update={
            "openai_api_key": LIVE_KEY,
            "openai_base_url": os.environ.get(
                "HERALD_OPENAI_BASE_URL", "https://api.openai.com/v1"
            ),
            "openai_model": os.environ.get("HERALD_OPENAI_MODEL", "gpt-4o-mini"),
            "openai_retry_backoff_seconds": 1.0,
            "openai_timeout_seconds": 60.0,
        }
    )
    request = {
        "brief": "A bakery opens a second shop on Main Street",
        "platforms": ["x", "bluesky"],
    }
    async with (
        serve_api(live) as url,
        httpx.AsyncClient(base_url=url, headers=tenant.headers, timeout=120) as http,
    ):
        response = await http.post("/v1/ai/generate", json=request)
        assert response.status_code == 200, response.text
        async with http.stream(
                "POST", "/v1/ai/rewrite", headers={"Accept": "text/event-stream"},
                json={"text": "We opens a new shop tomorow!", "action": "fix_grammar"},
            ) as stream:  # fmt: skip
            events = await read_events(stream)
    from herald_common.platforms.registry import build_platforms

    platforms = build_platforms(live, httpx.AsyncClient())
    for result in response.json()["results"]:
        for variant in result["variants"]:
            assert variant["text"]
            content = PostContent(text=variant["text"], thread=tuple(variant["thread"]))
            found = platforms[result["platform"]].validate(content)
            assert variant["valid"] == (not found)
    assert events[-1][0] == "result" and events[-1][1]["text"]
    assert any(name == "token" for name, _ in events)

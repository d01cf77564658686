"""The analytics process. For now: its lifecycle and a health loop that checks its
dependencies; metric collection and the best-time model build on this loop."""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis
from sqlalchemy import text

from herald_common import clock
from herald_common.db.engine import create_engine
from herald_common.logging import configure_logging, get_logger
from herald_common.loop import stop_signals
from herald_common.probe_server import LoopHealth, Probes, start_probe_server
from herald_common.settings import Settings, get_settings

log = get_logger(__name__)
HEALTH_INTERVAL_SECONDS = 10.0
HEARTBEAT_KEY = "herald:analytics:heartbeat"
CHECKS = LoopHealth("analytics check")


async def serve(settings: Settings) -> None:
    engine = create_engine(settings)
    redis = Redis.from_url(settings.redis_url)
    stopping = asyncio.Event()
    with stop_signals(stopping.set):
        live, ready = CHECKS.checks(settings.health_stall_seconds)
        probes = await start_probe_server(
            settings, "analytics", Probes({"loop": live}, {"loop": ready})
        )
        log.info("analytics started")
        try:
            while not stopping.is_set():
                try:
                    async with engine.connect() as connection:
                        await connection.execute(text("SELECT 1"))
                    # A heartbeat others (the API's /readyz, probes) can read.
                    await redis.set(
                        HEARTBEAT_KEY, clock.now().isoformat(), ex=int(3 * HEALTH_INTERVAL_SECONDS)
                    )
                    CHECKS.record(ok=True)
                except Exception as exc:  # reported, then tried again next interval
                    CHECKS.record(ok=False)
                    log.warning("analytics health check failed", error=type(exc).__name__)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stopping.wait(), HEALTH_INTERVAL_SECONDS)
        finally:
            await probes.stop()
            await redis.aclose()
            await engine.dispose()
            log.info("analytics stopped")


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "analytics")
    asyncio.run(serve(settings))

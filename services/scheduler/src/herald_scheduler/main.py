"""The scheduler process: wake on NOTIFY or every few seconds, and enqueue what is due.

Any number of replicas may run: each pass locks rows with SKIP LOCKED, so two schedulers never
take the same target, and deterministic job ids make a repeated enqueue harmless.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from redis.asyncio import Redis
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common import loop
from herald_common.db.engine import create_engine, create_session_factory
from herald_common.db.repositories.targets import NOTIFY_CHANNEL
from herald_common.logging import configure_logging, get_logger
from herald_common.loop import settle_garbage_collector, stop_signals
from herald_common.probe_server import start_probe_server
from herald_common.settings import Settings, get_settings
from herald_scheduler.enqueue import enqueue_due
from herald_scheduler.observability import scheduler_probes
from herald_scheduler.repair import enqueue_due_looks, repair_stranded

log = get_logger(__name__)


def asyncpg_dsn(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


class Scheduler:
    def __init__(
        self, settings: Settings, sessions: async_sessionmaker[AsyncSession], redis: Redis
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.redis = redis
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.passes = 0
        self.last_repair = float("-inf")

    def _on_notify(self, *_args: Any) -> None:
        self.wake.set()

    async def _listen(self) -> asyncpg.Connection[Any] | None:
        try:
            connection: asyncpg.Connection[Any] = await asyncpg.connect(
                asyncpg_dsn(self.settings.database_url)
            )
            await connection.add_listener(NOTIFY_CHANNEL, self._on_notify)
        except (OSError, asyncpg.PostgresError) as exc:
            # Polling still runs; NOTIFY only makes it prompter.
            log.warning("cannot listen for notifications", error=str(exc))
            return None
        return connection

    async def run(self) -> None:
        listener = await self._listen()
        try:
            while not self.stopping.is_set():
                self.wake.clear()
                try:
                    await enqueue_due(self.sessions, self.redis, self.settings)
                    await self._repair_if_due()
                except Exception:  # a failed pass is retried on the next wake-up
                    log.exception("scheduler pass failed")
                self.passes += 1
                if listener is None or listener.is_closed():
                    listener = await self._listen()
                stop = asyncio.ensure_future(self.stopping.wait())
                wake = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait(
                    {stop, wake},
                    timeout=self.settings.scheduler_interval_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                stop.cancel()
                wake.cancel()
        finally:
            if listener is not None and not listener.is_closed():
                await listener.close()

    async def _repair_if_due(self) -> None:
        now = asyncio.get_running_loop().time()
        if now - self.last_repair >= self.settings.scheduler_repair_interval_seconds:
            self.last_repair = now
            await repair_stranded(self.sessions, self.redis, self.settings)
            await enqueue_due_looks(self.sessions, self.redis, self.settings)

    def stop(self) -> None:
        """Finish the pass in progress (it commits or rolls back whole), then return."""
        self.stopping.set()


async def serve(settings: Settings) -> None:
    engine = create_engine(settings)
    redis = Redis.from_url(settings.redis_url)
    scheduler = Scheduler(settings, create_session_factory(engine), redis)
    with stop_signals(scheduler.stop):
        probes = await start_probe_server(settings, "scheduler", scheduler_probes(settings, redis))
        settle_garbage_collector()
        log.info("scheduler started", horizon_seconds=settings.scheduler_horizon_seconds)
        try:
            await scheduler.run()
        finally:
            await probes.stop()
            await redis.aclose()
            await engine.dispose()
            log.info("scheduler stopped")


def main() -> None:
    settings = get_settings()
    configure_logging(settings, "scheduler")
    loop.run(serve(settings))

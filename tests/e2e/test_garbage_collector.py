"""The long-running services take what start-up built out of the garbage collector's sight
before they start working, and collect the youngest generation less often
(herald_common.loop.settle_garbage_collector): otherwise the older generations keep walking a
few hundred thousand objects that live as long as the process, a sixth of a publisher's CPU
per post in a spike (bench/README.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from arq.worker import Worker

from herald_common.loop import GEN0_THRESHOLD
from herald_common.settings import Settings
from herald_publisher import worker as publisher
from herald_scheduler import main as scheduler
from herald_scheduler.main import Scheduler


@pytest.fixture
def when_work_starts() -> Iterator[list[tuple[int, int]]]:
    """As each worker loop starts: the objects in the permanent generation (none before) and
    the youngest generation's threshold. The collector is put back afterwards."""
    gc.unfreeze()
    thresholds = gc.get_threshold()
    assert thresholds[0] != GEN0_THRESHOLD
    seen: list[tuple[int, int]] = []
    yield seen
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def settled(seen: list[tuple[int, int]]) -> bool:
    return bool(seen) and all(frozen > 10_000 and gen0 == GEN0_THRESHOLD for frozen, gen0 in seen)


async def test_the_publisher_settles_the_collector_before_it_takes_jobs(
    settings: Settings, when_work_starts: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def poll(self: Worker) -> None:  # the worker's loop, returning at once
        when_work_starts.append((gc.get_freeze_count(), gc.get_threshold()[0]))

    monkeypatch.setattr(Worker, "async_run", poll)
    await publisher.serve(
        settings.model_copy(update={"metrics_port": 0, "publisher_platforms": ["sandbox"]})
    )
    assert settled(when_work_starts), when_work_starts


async def test_the_scheduler_settles_the_collector_before_its_first_pass(
    settings: Settings, when_work_starts: list[tuple[int, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run(self: Scheduler) -> None:
        when_work_starts.append((gc.get_freeze_count(), gc.get_threshold()[0]))

    monkeypatch.setattr(Scheduler, "run", run)
    await scheduler.serve(settings.model_copy(update={"metrics_port": 0}))
    assert settled(when_work_starts), when_work_starts

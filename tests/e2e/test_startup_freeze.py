"""The long-running services take what start-up built out of the garbage collector's sight
before they start working (herald_common.loop.freeze_startup_objects): otherwise its older
generations keep walking a few hundred thousand objects that live as long as the process, a
sixth of a publisher's CPU per post in a spike (bench/README.md)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from arq.worker import Worker

from herald_common.settings import Settings
from herald_publisher import worker as publisher
from herald_scheduler import main as scheduler
from herald_scheduler.main import Scheduler


@pytest.fixture
def frozen_when_work_starts() -> Iterator[list[int]]:
    """Objects in the permanent generation as each worker loop starts (none before)."""
    gc.unfreeze()
    seen: list[int] = []
    yield seen
    gc.unfreeze()


async def test_the_publisher_freezes_start_up_before_it_takes_jobs(
    settings: Settings, frozen_when_work_starts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def poll(self: Worker) -> None:  # the worker's loop, returning at once
        frozen_when_work_starts.append(gc.get_freeze_count())

    monkeypatch.setattr(Worker, "async_run", poll)
    await publisher.serve(
        settings.model_copy(update={"metrics_port": 0, "publisher_platforms": ["sandbox"]})
    )
    assert frozen_when_work_starts and min(frozen_when_work_starts) > 10_000


async def test_the_scheduler_freezes_start_up_before_its_first_pass(
    settings: Settings, frozen_when_work_starts: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def run(self: Scheduler) -> None:
        frozen_when_work_starts.append(gc.get_freeze_count())

    monkeypatch.setattr(Scheduler, "run", run)
    await scheduler.serve(settings.model_copy(update={"metrics_port": 0}))
    assert frozen_when_work_starts and min(frozen_when_work_starts) > 10_000

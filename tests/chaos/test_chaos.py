"""A small chaos run in every `make test`; `make chaos` runs the large one."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from herald_common.settings import Settings
from tests.chaos.harness import CUT_OFF, ChaosPlan, run_chaos
from tests.conftest import Tenant

LARGE = ChaosPlan(
    targets=2000, accounts_per_platform=20, publishers=4, kills=12, kill_every_seconds=2.0,
    due_within_seconds=5.0, timeout_seconds=600.0,
)  # fmt: skip


@pytest.mark.chaos
@pytest.mark.timeout(900)
async def test_nothing_is_lost_or_doubled_under_kills_restarts_and_faults(
    settings: Settings, sessions: async_sessionmaker[AsyncSession], tenant: Tenant, tmp_path: Path
) -> None:
    plan = LARGE if os.environ.get("HERALD_CHAOS") == "large" else ChaosPlan()
    report = await run_chaos(plan, settings, sessions, tenant.workspace_id, tmp_path)
    print(f"\nchaos run ({plan.targets} targets)\n{report.table()}\n{dict(report.statuses)}")  # noqa: T201
    assert report.kills == plan.kills
    assert report.redis_restarts == 1
    assert report.duplicates == 0
    assert report.lost == 0
    assert report.silent == 0
    assert report.published + report.failed + report.unknown == plan.targets
    # Every unknown has a reason, and one whose platform never received its request can only
    # be one whose attempt was cut off (killed, timed out) after marking it as leaving.
    assert not [key for key in report.unknown_reasons if key[1] == "other"]
    assert set(report.unknown_never_received) <= {CUT_OFF}
    # The faults are a minority: most targets must have gone out.
    assert report.published > plan.targets * 0.8

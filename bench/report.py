"""What a benchmark says and keeps: progress notes, percentiles, the printed table, and the
results under bench/results/ (summary.json holds each benchmark's latest numbers)."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results"
MACHINE = f"{os.cpu_count()} cores, {os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB"  # noqa: E501


def note(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def lateness_summary(lateness: Sequence[float]) -> dict[str, float]:
    return {
        "p50_s": percentile(lateness, 50),
        "p95_s": percentile(lateness, 95),
        "p99_s": percentile(lateness, 99),
        "max_s": max(lateness) if lateness else math.nan,
        "min_s": min(lateness) if lateness else math.nan,
    }


def print_table(title: str, rows: Sequence[tuple[str, object]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n{title}")
    print("-" * len(title))
    for name, value in rows:
        if isinstance(value, float):
            shown = f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
        elif isinstance(value, int):
            shown = f"{value:,}"
        else:
            shown = str(value)
        print(f"{name:>{width}}  {shown}")
    sys.stdout.flush()


# The suffix of quick A/B runs (spike --no-loops): results of their own, never in summary.json.
HERALD_ONLY = "_herald_only"


def result_name(name: str, args: argparse.Namespace) -> str:
    """Runs with several processes keep results (and pictures) of their own
    (``spike_2_publishers``, ``api_2_workers``) beside the one-process ones, and so do
    spikes without the plain loops (``spike_herald_only``) and runs where the fake answers
    some requests 503 (``steady_5pct_5xx``)."""
    if getattr(args, "no_loops", False):
        name += HERALD_ONLY
    fail_rate = getattr(args, "fail_rate", 0.0)
    if fail_rate:
        name += f"_{fail_rate:.0%}_5xx".replace("%", "pct")
    for option in ("publishers", "workers"):
        count = getattr(args, option, 1)
        if count != 1:
            return f"{name}_{count}_{option}"
    return name


def write_result(name: str, result: dict[str, Any]) -> Path:
    """bench/results/<name>.json (ignored by git) and, except for A/B runs, the benchmark's
    entry in summary.json."""
    RESULTS.mkdir(exist_ok=True)
    result = {
        "benchmark": name,
        "machine": MACHINE,
        "load_average_at_end": os.getloadavg(),
        "at": datetime.now(UTC).isoformat(),
        **result,
    }
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    if HERALD_ONLY in name:
        return path  # a quick A/B run (spike --no-loops), not a number for the README
    summary_path = RESULTS / "summary.json"
    summary: dict[str, Any] = {}
    if summary_path.exists():
        summary = json.loads(summary_path.read_text())
    summary[name] = {k: v for k, v in result.items() if not isinstance(v, list)}
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True, default=str) + "\n")
    return path

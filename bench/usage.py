"""What each part of the stack costs while a benchmark runs: CPU time and memory of its
processes, read from /proc."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path


def memory_mib(pid: int) -> dict[str, float]:
    """VmRSS and VmHWM (peak RSS) of a live process, from /proc, in MiB."""
    values: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, rest = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    values[key] = int(rest.split()[0]) / 1024
    except OSError:
        pass
    return values


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _component(pid: int) -> str | None:
    """Which part of the stack a process is, by its command line; None for the rest."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return None
    for needle, name in (
        ("herald-publisher", "publisher"),
        ("herald-scheduler", "scheduler"),
        ("herald-api", "api"),
        ("bench.fake_platform", "fake platform"),
        ("redis-server", "redis"),
        ("postgres", "postgres"),
        ("-m bench", "bench driver"),
    ):
        if needle in cmdline:
            return name
    return None


def _processes() -> Iterator[tuple[int, int, float]]:
    """Every live process as (pid, parent pid, CPU seconds used so far, user + system)."""
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        # After the command come fields 3 onwards of stat(5): ppid is 4, utime 14, stime 15.
        yield int(pid), int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def cpu_seconds() -> dict[str, float]:
    """CPU time (user + system) used so far by each part of the stack, summed over its
    processes, plus ``machine busy`` and ``machine total`` (all cores) from /proc/stat.
    Two snapshots subtracted say where the cores went between them."""
    used: dict[str, float] = {}
    for pid, _, seconds in _processes():
        name = _component(pid)
        if name is not None:
            used[name] = used.get(name, 0.0) + seconds
    with open("/proc/stat") as stat:
        cpu = [int(v) for v in stat.readline().split()[1:]]
    idle = cpu[3] + cpu[4]  # idle + iowait
    used["machine busy"] = (sum(cpu) - idle) / CLOCK_TICKS
    used["machine total"] = sum(cpu) / CLOCK_TICKS
    return used


def tree_cpu_seconds(root: int) -> float:
    """CPU time (user + system) used so far by process ``root`` and its live descendants
    (uvicorn's worker processes, say, whose command lines do not name the service)."""
    parents: dict[int, int] = {}
    used: dict[int, float] = {}
    for pid, parent, seconds in _processes():
        parents[pid] = parent
        used[pid] = seconds

    def in_tree(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    return sum(seconds for pid, seconds in used.items() if in_tree(pid))


def cpu_between(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each part used between two ``cpu_seconds()`` snapshots."""
    return {name: round(after[name] - before.get(name, 0.0), 2) for name in after}

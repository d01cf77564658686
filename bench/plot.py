"""PNG plots of a publishing benchmark: lateness distribution and arrivals over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_publishing(
    path: Path,
    title: str,
    lateness_s: Sequence[float],
    timelines: Mapping[str, Sequence[float]],
    bin_s: float,
    lateness_unit: str = "s",
    lateness_over_time: Sequence[tuple[float, float]] = (),
) -> Path:
    """Left: the lateness distribution (histogram + CDF). Right: arrivals at the fake
    platform per ``bin_s`` seconds, per series (seconds since the series started), with each
    post's lateness over time (due offset, lateness) on a second axis when given."""
    scale = 1000.0 if lateness_unit == "ms" else 1.0
    values = sorted(v * scale for v in lateness_s)
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    fig.suptitle(title)
    if values:
        left.hist(values, bins=60, color="#4477aa", alpha=0.8)
        left.set_xlabel(f"lateness at the platform ({lateness_unit})")
        left.set_ylabel("posts")
        cdf = left.twinx()
        cdf.plot(values, [(i + 1) / len(values) for i in range(len(values))], color="#cc6677")
        cdf.set_ylabel("cumulative fraction", color="#cc6677")
        cdf.set_ylim(0, 1.01)
        for q in (50, 99):
            v = values[max(0, min(len(values) - 1, int(len(values) * q / 100) - 1))]
            left.axvline(v, color="grey", linestyle=":", linewidth=1)
            left.text(v, left.get_ylim()[1] * 0.95, f" p{q}", color="grey", fontsize=8)
    left.set_title("lateness distribution")
    for label, times in timelines.items():
        if not times:
            continue
        end = max(times)
        bins = max(1, int(end / bin_s) + 1)
        counts = [0] * bins
        for t in times:
            counts[min(bins - 1, max(0, int(t / bin_s)))] += 1
        rate = [c / bin_s for c in counts]
        right.plot([i * bin_s for i in range(bins)], rate, label=label, drawstyle="steps-post")
    if lateness_over_time:
        dots = right.twinx()
        dots.scatter(
            [t for t, _ in lateness_over_time],
            [v * scale for _, v in lateness_over_time],
            s=4,
            color="#228833",
            label="lateness of each post",
        )
        dots.set_ylabel(f"lateness ({lateness_unit})", color="#228833")
        dots.set_ylim(bottom=0)
    right.set_xlabel("seconds since due (plain loops: since start)")
    right.set_ylabel("arrivals per second")
    right.set_title("arrivals at the fake platform")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

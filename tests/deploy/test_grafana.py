"""deploy/grafana/herald.json stays in step with the metrics Herald defines."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import REGISTRY

import herald_common.metrics
from tests.deploy.manifests import ROOT

DASHBOARD = ROOT / "deploy" / "grafana" / "herald.json"
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}


def herald_series() -> dict[str, str]:
    """Every series name Herald exports -> its metric family."""
    assert herald_common.metrics.PUBLISH_LATENESS  # the definitions are registered on import
    series: dict[str, str] = {}
    for family in REGISTRY.collect():
        if family.name.startswith("herald_"):
            for suffix in SUFFIXES[family.type]:
                series[family.name + suffix] = family.name
    return series


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_every_query_uses_a_defined_metric_and_every_metric_is_shown() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    series = herald_series()
    shown: set[str] = set()
    for panel in panels(dashboard):
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for name in re.findall(r"\bherald_[a-z_]+", target["expr"]):
                assert name in series, (panel["title"], name)
                shown.add(series[name])
    assert shown == set(series.values())


def test_panels_have_unique_ids_and_use_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
    assert {"datasource", "platform"} <= {v["name"] for v in dashboard["templating"]["list"]}

"""The Grafana dashboard stays in step with the metrics AgentMetrics exposes."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import defiagent.monitoring
from defiagent.monitoring.metrics import AgentMetrics

DASHBOARD = Path(defiagent.monitoring.__file__).parent / "grafana" / "defiagent-dashboard.json"
METRIC = re.compile(r"\bdefiagent_[a-zA-Z0-9_]+")
# The sample names prometheus_client writes for each metric type.
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
}


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def exposed() -> dict[str, str]:
    """Every sample name the registry can expose -> its family name (labelled metrics with
    no children yet produce no samples, so the names come from the family type)."""
    names = {}
    for family in AgentMetrics().registry.collect():
        for suffix in SUFFIXES[family.type]:
            names[family.name + suffix] = family.name
    return names


def panels(dashboard: dict) -> list[dict]:
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))  # inside collapsed rows
    return out


def strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []


def used_metrics(dashboard: dict) -> set[str]:
    return {m for s in strings(dashboard) for m in METRIC.findall(s)}


def test_dashboard_is_an_importable_grafana_dashboard(dashboard):
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert [i["name"] for i in dashboard["__inputs"]] == ["DS_PROMETHEUS"]
    assert dashboard["uid"]
    assert dashboard["title"]
    ids = [p["id"] for p in panels(dashboard)]
    assert len(ids) == len(set(ids))


def test_every_panel_queries_prometheus(dashboard):
    graphs = [p for p in panels(dashboard) if p["type"] != "row"]
    assert len(graphs) >= 15
    for panel in graphs:
        assert panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}", panel["title"]
        for target in panel["targets"]:
            expr = target["expr"]
            assert METRIC.search(expr), (panel["title"], expr)
            for open_, close in ("()", "[]", "{}"):
                assert expr.count(open_) == expr.count(close), (panel["title"], expr)


def test_every_metric_on_the_dashboard_exists(dashboard):
    names = exposed()
    unknown = used_metrics(dashboard) - set(names)
    assert not unknown, f"the dashboard queries metrics AgentMetrics does not expose: {unknown}"


def test_every_metric_is_on_the_dashboard(dashboard):
    names = exposed()
    shown = {names[m] for m in used_metrics(dashboard) if m in names}
    families = set(names.values())
    assert families - shown == set(), "add a panel for these metrics"


def test_counters_are_queried_by_their_total_samples(dashboard):
    counters = {f.name for f in AgentMetrics().registry.collect() if f.type == "counter"}
    for metric in used_metrics(dashboard):
        assert metric not in counters, f"{metric}: Prometheus sees counters as {metric}_total"

"""The Grafana dashboard: valid JSON, provisioned datasource, and PromQL that only uses the
metrics app/metrics.py registers (with their real labels)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from tests.deploy.dashboard import (
    DATASOURCES,
    DEPLOY,
    DS_VARIABLE,
    all_panels,
    concrete,
    data_panels,
    expressions,
    load_dashboard,
    parse,
    registered_families,
    registered_samples,
)

PANEL_TYPES = {"timeseries", "stat", "state-timeline", "gauge", "bargauge", "table", "row"}
DS_REF = {"type": "prometheus", "uid": "${" + DS_VARIABLE + "}"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return load_dashboard()


def provisioned_datasource() -> dict[str, Any]:
    files = sorted(DATASOURCES.glob("*.yml"))
    assert files, f"no datasource provisioning file in {DATASOURCES}"
    sources = [ds for f in files for ds in yaml.safe_load(f.read_text())["datasources"]]
    prometheus = [ds for ds in sources if ds["type"] == "prometheus"]
    assert len(prometheus) == 1, prometheus
    ds: dict[str, Any] = prometheus[0]
    return ds


def test_top_level_fields(dashboard: dict[str, Any]) -> None:
    assert dashboard["title"] == "halo"
    assert dashboard["uid"] == "halo-overview"
    # 39 = Grafana 10.4 / 11.0; newer Grafana migrates it on load, older would not read it
    assert dashboard["schemaVersion"] == 39
    assert dashboard["id"] is None, "a provisioned dashboard carries no database id"
    assert dashboard["time"] == {"from": "now-1h", "to": "now"}
    assert isinstance(dashboard["refresh"], str)
    assert dashboard["editable"] is True
    assert dashboard["panels"]


def test_panels_have_grafana_fields_and_do_not_overlap(dashboard: dict[str, Any]) -> None:
    ids = [p["id"] for p in all_panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    cells: set[tuple[int, int]] = set()
    for panel in all_panels(dashboard):
        assert panel["type"] in PANEL_TYPES, panel["type"]
        assert isinstance(panel["id"], int)
        assert panel["title"]
        pos = panel["gridPos"]
        assert set(pos) == {"h", "w", "x", "y"}
        assert all(isinstance(v, int) and v >= 0 for v in pos.values())
        assert pos["w"] > 0, panel["title"]
        assert pos["h"] > 0, panel["title"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"])
                for y in range(pos["y"], pos["y"] + pos["h"])}
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
    for panel in data_panels(dashboard):
        assert panel["description"], panel["title"]
        assert "unit" in panel["fieldConfig"]["defaults"], panel["title"]
        assert isinstance(panel["options"], dict)
        refs = [t["refId"] for t in panel["targets"]]
        assert refs, panel["title"]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel["targets"]:
            assert target["expr"].strip()
            assert "legendFormat" in target


def _datasource_refs(node: Any, path: str = "") -> list[tuple[str, Any]]:
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                found.append((f"{path}/{key}", value))
            found += _datasource_refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _datasource_refs(value, f"{path}/{i}")
    return found


def test_every_panel_and_target_uses_the_provisioned_datasource(
        dashboard: dict[str, Any]) -> None:
    for panel in data_panels(dashboard):
        assert panel["datasource"] == DS_REF, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DS_REF, panel["title"]
    refs = _datasource_refs(dashboard)
    assert refs
    for where, ref in refs:
        # no numeric ids and no legacy datasource names: only {type, uid} objects
        assert isinstance(ref, dict), f"{where}: {ref!r}"
        assert ref == DS_REF, f"{where}: {ref!r}"


def test_datasource_variable_defaults_to_the_provisioned_uid(dashboard: dict[str, Any]) -> None:
    ds = provisioned_datasource()
    assert ds["uid"] == "halo-prometheus"
    assert ds["url"] == "http://prometheus:9090"
    assert ds["access"] == "proxy"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    var = variables[DS_VARIABLE]
    assert var["type"] == "datasource"
    assert var["query"] == "prometheus"
    assert var["current"]["value"] == ds["uid"]
    # Grafana derives $__rate_interval from the scrape interval it is told
    prom = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert ds["jsonData"]["timeInterval"] == prom["global"]["scrape_interval"]


def test_dashboard_provider_path_is_where_compose_mounts_the_json() -> None:
    providers = [p for f in sorted((DEPLOY / "grafana" / "provisioning" / "dashboards")
                                   .glob("*.yml"))
                 for p in yaml.safe_load(f.read_text())["providers"]]
    assert len(providers) == 1
    path = providers[0]["options"]["path"]
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{path}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    env = compose["services"]["grafana"]["environment"]
    assert env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] == f"{path}/halo.json"


def test_model_variable(dashboard: dict[str, Any]) -> None:
    var = {v["name"]: v for v in dashboard["templating"]["list"]}["model"]
    query = "label_values(halo_generation_tokens_total, model)"
    assert var["type"] == "query"
    assert var["definition"] == query
    assert var["query"]["query"] == query
    assert var["datasource"] == DS_REF
    assert var["multi"] is True
    assert var["includeAll"] is True
    assert var["allValue"] == ".*"


def test_promql_uses_only_registered_metrics_and_labels(dashboard: dict[str, Any]) -> None:
    samples = registered_samples()
    exprs = expressions(dashboard)
    assert len(exprs) >= 15
    for expr in exprs:
        parsed = parse(concrete(expr))
        assert not parsed.unknown, f"unknown functions {parsed.unknown} in {expr}"
        assert parsed.metrics, f"no metric in {expr}"
        unregistered = parsed.metrics - set(samples)
        assert not unregistered, f"{expr}: {unregistered} are not registered by app/metrics.py"
        known_labels = {label for m in parsed.metrics for label in samples[m]}
        assert parsed.grouping_labels <= known_labels, expr
        for metric, labels in parsed.matcher_labels.items():
            assert metric in samples, f"selector without a halo metric name in {expr}"
            assert labels <= set(samples[metric]), f"{metric} has no label {labels} ({expr})"
        # the model picker filters every series that has a model label
        for metric in parsed.metrics:
            if "model" in samples[metric]:
                assert re.search(re.escape(metric) + r'\{[^}]*model=~"\$model"', expr), expr


def test_every_registered_metric_is_on_the_dashboard(dashboard: dict[str, Any]) -> None:
    used = {m for expr in expressions(dashboard) for m in parse(concrete(expr)).metrics}
    for family in registered_families().values():
        assert used & set(family.samples), f"{family.name} has no panel"


@pytest.mark.parametrize("needle", [
    "sum by (model) (rate(halo_generation_tokens_total{",
    "sum by (model) (rate(halo_prompt_tokens_total{",
    "1 / (sum by (model) (rate(halo_inter_token_latency_seconds_sum{",
    "histogram_quantile(0.5, sum by (model, le) (rate(halo_time_to_first_token_seconds_bucket{",
    "histogram_quantile(0.95, sum by (model, le) (rate(halo_time_to_first_token_seconds_bucket{",
    "histogram_quantile(0.5, sum by (model, le) (rate(halo_e2e_request_latency_seconds_bucket{",
    "histogram_quantile(0.95, sum by (model, le) (rate(halo_e2e_request_latency_seconds_bucket{",
    "histogram_quantile(0.95, sum by (model, le) (rate(halo_queue_time_seconds_bucket{",
    "halo_requests_running{",
    "halo_requests_waiting{",
    "sum by (kind) (halo_memory_pool_bytes)",
    "sum by (model, kind) (halo_model_memory_bytes{",
    "halo_model_loaded{",
    "increase(halo_model_loads_total{",
    "increase(halo_model_evictions_total{",
    "halo_model_load_seconds_sum{",
    'sum by (status) (rate(halo_requests_total{model=~"$model", status!="ok"}[5m]))',
])
def test_required_panel_queries(dashboard: dict[str, Any], needle: str) -> None:
    assert any(needle in expr for expr in expressions(dashboard)), needle

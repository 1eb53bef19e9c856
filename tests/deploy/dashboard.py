"""The Grafana dashboard and the metrics it may use: shared by the deploy and e2e tests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.metrics import MetricWrapperBase

from app.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "halo.json"
DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources"
DS_VARIABLE = "DS_PROMETHEUS"

# Sample-name suffixes each metric type exposes (prometheus_client, text format 0.0.4).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "gauge": ("",),
}

# PromQL functions and aggregation operators a dashboard may call.
PROMQL_FUNCTIONS = frozenset({
    "abs", "avg", "avg_over_time", "bottomk", "ceil", "clamp", "clamp_max", "clamp_min",
    "count", "count_over_time", "delta", "deriv", "floor", "group", "histogram_quantile",
    "idelta", "increase", "irate", "label_replace", "last_over_time", "max",
    "max_over_time", "min", "min_over_time", "quantile", "quantile_over_time", "rate",
    "round", "scalar", "sort", "sort_desc", "stddev", "sum", "sum_over_time", "time",
    "timestamp", "topk", "vector",
})
PROMQL_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right",
                             "bool", "offset", "and", "or", "unless"})


@dataclass(frozen=True)
class Family:
    name: str
    type: str
    labels: tuple[str, ...]

    @property
    def samples(self) -> dict[str, tuple[str, ...]]:
        """Exposed sample name -> its label names."""
        out: dict[str, tuple[str, ...]] = {}
        for suffix in _SUFFIXES[self.type]:
            out[self.name + suffix] = (*self.labels, "le") if suffix == "_bucket" else self.labels
        return out


def registered_families() -> dict[str, Family]:
    """The metric families app.metrics.Metrics registers (read from a real instance)."""
    metrics = Metrics()
    families = {f.name: f.type for f in metrics.registry.collect()}
    out: dict[str, Family] = {}
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            # the public API exposes no label names
            name = value._name
            out[name] = Family(name, families[name], tuple(value._labelnames))
    assert set(out) == set(families), "every registered family is a Metrics attribute"
    return out


def registered_samples() -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for family in registered_families().values():
        out.update(family.samples)
    return out


def load_dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def all_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, including those nested in collapsed rows."""
    for panel in dashboard["panels"]:
        yield panel
        yield from panel.get("panels", [])


def data_panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in all_panels(dashboard) if p["type"] != "row"]


def expressions(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in data_panels(dashboard) for t in p["targets"]]


def concrete(expr: str, rate_interval: str = "1m") -> str:
    """What Grafana sends to Prometheus, with the model variable on "All"."""
    out = (expr.replace("${model}", ".*").replace("$model", ".*")
           .replace("$__rate_interval", rate_interval).replace("$__interval", rate_interval))
    assert "$" not in out, f"unsubstituted variable in {out}"
    return out


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)?\s*\{([^}]*)\}")
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_TOKEN = re.compile(r"\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_:][\w:]*")


@dataclass
class Parsed:
    metrics: set[str]
    functions: set[str]
    unknown: set[str]
    grouping_labels: set[str]
    matcher_labels: dict[str, set[str]]  # metric -> label names in its {...} selector


def parse(expr: str) -> Parsed:
    """A small PromQL scanner: enough to name every metric, function and label an
    expression uses (not a validator: Prometheus itself checks syntax in the e2e test)."""
    text = _STRING.sub('""', expr)
    matcher_labels: dict[str, set[str]] = {}
    for match in _SELECTOR.finditer(text):
        labels = {m.group(1) for m in re.finditer(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)",
                                                  match.group(2))}
        matcher_labels.setdefault(match.group(1) or "", set()).update(labels)
    text = _SELECTOR.sub(lambda m: m.group(1) or "", text)
    grouping = {label.strip() for m in _GROUPING.finditer(text)
                for label in m.group(2).split(",") if label.strip()}
    text = _GROUPING.sub(" ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    metrics: set[str] = set()
    functions: set[str] = set()
    unknown: set[str] = set()
    for token in _TOKEN.finditer(text):
        word = token.group(0)
        if word[0].isdigit() or word in PROMQL_KEYWORDS:
            continue
        rest = text[token.end():].lstrip()
        if rest.startswith("("):
            (functions if word in PROMQL_FUNCTIONS else unknown).add(word)
        else:
            metrics.add(word)
    return Parsed(metrics, functions, unknown, grouping, matcher_labels)

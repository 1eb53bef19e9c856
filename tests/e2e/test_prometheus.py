"""Issue 6 acceptance: a real Prometheus scrapes a real halo serving real streams, and every
query of the Grafana dashboard returns data; the token counter agrees with what the client got.

Needs the `prometheus` binary (Debian package `prometheus`); everything listens on loopback.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.deploy.dashboard import concrete, data_panels, load_dashboard
from tests.e2e.conftest import make_models_dir
from tests.e2e.nodes import halo_node
from tests.e2e.server import Server, free_port, halo_server
from tests.system_tools import require_tool

pytestmark = pytest.mark.e2e

log = logging.getLogger(__name__)

MODEL = "smollm2"  # n_ctx 2048, 8 slots (tests/e2e/conftest.make_models_dir)
SPLIT = "smollm2-split"  # split with a loopback RPC node (the stack fixture)
STREAMS = 6
TOKENS = 64
SCRAPE = 1.0  # seconds


@dataclass
class Stack:
    halo: Server
    prometheus: str
    client_tokens: list[int]
    traffic_start: float  # unix seconds
    traffic_end: float
    at: float  # the instant every query is evaluated at

    @property
    def window(self) -> str:
        """A range that covers the whole traffic: what $__rate_interval stands for here (a
        Grafana panel zoomed on the traffic would use a window at least this wide); the 1m of
        `rate(halo_generation_tokens_total[1m])` whenever the traffic fits in it."""
        return f"{max(60, math.ceil(self.at - self.traffic_start) + 5)}s"


# ---- Prometheus ---------------------------------------------------------------------------

@contextmanager
def prometheus(target: str, tmp: Path) -> Iterator[str]:
    binary = require_tool("prometheus")
    port = free_port()
    config = tmp / "prometheus.yml"
    # JSON is YAML: no YAML writer needed
    config.write_text(json.dumps({
        "global": {"scrape_interval": f"{SCRAPE:g}s", "scrape_timeout": f"{SCRAPE:g}s",
                   "evaluation_interval": f"{SCRAPE:g}s"},
        "scrape_configs": [{"job_name": "halo", "metrics_path": "/metrics",
                            "static_configs": [{"targets": [target]}]}],
    }))
    log_path = tmp / "prometheus.log"
    cmd = [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
           f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"prometheus exited with {proc.returncode}:\n"
                            f"{log_path.read_text(errors='replace')}")
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prometheus did not become ready:\n{log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def query(url: str, expr: str, at: float | None = None) -> list[dict[str, Any]]:
    params = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
    response = httpx.get(url + "/api/v1/query", params=params, timeout=10)
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "success", body
    assert body["data"]["resultType"] in {"vector", "scalar"}, body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def query_range(url: str, expr: str, start: float, end: float,
                step: float) -> list[dict[str, Any]]:
    response = httpx.get(url + "/api/v1/query_range", timeout=10, params={
        "query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"})
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


def scalar(url: str, expr: str, at: float | None = None) -> float:
    result = query(url, expr, at)
    assert len(result) == 1, f"{expr}: {result}"
    return float(result[0]["value"][1])


def wait_for(url: str, expr: str, ok: Any, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        result = query(url, expr)
        if result and all(ok(float(r["value"][1])) for r in result):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}: {expr} -> {result}")
        time.sleep(SCRAPE / 2)


# ---- traffic ------------------------------------------------------------------------------

# stream 0 opts in to n-gram speculation (off by default) on a copying task, for the
# speculation panels; "always" so that it drafts whatever a wider step costs on this machine,
# greedy so that it copies (sampled at the default temperature 1, the 135M model's output
# sometimes left the list at once and nothing was drafted: the panel's 0/0)
COPY = ("Repeat this list exactly, one item per line:\n"
        + "\n".join(f"item {k}: red green blue" for k in range(12)))
SPECULATE = {"speculative": {"type": "ngram", "budget": "always"}, "temperature": 0}


async def _stream(client: openai.AsyncOpenAI, i: int) -> int:
    stream = await client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": COPY if i == 0 else f"Tell story number {i}."}],
        max_tokens=TOKENS, stream=True, stream_options={"include_usage": True},
        extra_body={"ignore_eos": True, **(SPECULATE if i == 0 else {})})
    completion_tokens = None
    async for chunk in stream:
        if chunk.usage is not None:
            completion_tokens = chunk.usage.completion_tokens
    assert completion_tokens is not None, "no usage chunk"
    return completion_tokens


async def _traffic(server: Server) -> list[int]:
    async with openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0,
                                  timeout=120) as client:
        counts = list(await asyncio.gather(*(_stream(client, i) for i in range(STREAMS))))
        # one failed request, for the error-rate panel: a prompt longer than the context
        with pytest.raises(openai.BadRequestError) as err:
            await client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "word " * 3000}],
                max_tokens=4)
        assert err.value.code == "context_length_exceeded"
    return counts


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("prometheus-e2e")
    models = make_models_dir(tmp / "models")
    with halo_node(tmp, mem="256MiB") as node:
        # a model split over a loopback RPC node, for the per-node panel (the split is planned
        # from the config and the node's reported memory: it need not be loaded)
        with (models / "models.toml").open("a") as toml:
            toml.write(f'[models.{SPLIT}]\npath = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
                       'n_ctx = 512\nparallel = 1\nnodes = "all"\ntensor_split = [1, 1]\n')
        with halo_server(models, tmp, ["--node", node.address]) as halo, \
                prometheus(halo.url.removeprefix("http://"), tmp) as prom:
            yield from _run_stack(halo, prom)


def _run_stack(halo: Server, prom: str) -> Iterator[Stack]:
    wait_for(prom, 'up{job="halo"}', lambda v: v == 1, "the first scrape of halo")
    start = time.time()
    counts = asyncio.run(_traffic(halo))
    end = time.time()
    # an unload, for the evictions panel (and the loaded gauge going back to 0)
    unloaded = httpx.post(halo.url + "/models/unload", json={"model": MODEL}, timeout=60)
    assert unloaded.status_code == 200, unloaded.text
    wait_for(prom, "sum(halo_model_evictions_total)", lambda v: v >= 1, "the unload")
    wait_for(prom, "sum(halo_generation_tokens_total)", lambda v: v >= sum(counts),
             "the last tokens to be scraped")
    # let every query window see the whole traffic plus a few scrapes after it, and at
    # least 45 s of samples since it began: increase()/rate() extrapolate the last scrape
    # interval, an error of about one interval over the sampled span (2% here, 8% for a
    # 12 s span)
    time.sleep(max(0.0, max(end + 6 * SCRAPE, start + 45) - time.time()))
    yield Stack(halo, prom, counts, start, end, time.time())


# ---- the dashboard's queries --------------------------------------------------------------

def _dashboard_targets() -> list[Any]:
    return [pytest.param(t["expr"], id=f"{p['title']}/{t['refId']}")
            for p in data_panels(load_dashboard()) for t in p["targets"]]


@pytest.mark.parametrize("expr", _dashboard_targets())
def test_dashboard_query_returns_data(stack: Stack, expr: str) -> None:
    promql = concrete(expr, stack.window)
    result = query(stack.prometheus, promql, stack.at)
    assert result, f"no data for {promql}"
    values = [float(r["value"][1]) for r in result]
    assert any(math.isfinite(v) for v in values), f"{promql} -> {result}"
    log.info("dashboard query %s -> %s", promql,
             {json.dumps(r["metric"], sort_keys=True): r["value"][1] for r in result})


def test_client_got_every_token(stack: Stack) -> None:
    assert stack.client_tokens == [TOKENS] * STREAMS


def test_generation_token_counter_agrees_with_client_usage(stack: Stack) -> None:
    client = sum(stack.client_tokens)
    prom = stack.prometheus
    raw = scalar(prom, "sum(halo_generation_tokens_total)", stack.at)
    increased = scalar(prom, f"sum(increase(halo_generation_tokens_total[{stack.window}]))",
                       stack.at)
    # the area under the rate curve a Grafana panel draws (1 s steps over the traffic)
    step = 1.0
    series = query_range(prom, "sum(rate(halo_generation_tokens_total[5s]))",
                         stack.traffic_start - 2, stack.at, step)
    assert len(series) == 1
    integrated = sum(float(v) for _, v in series[0]["values"] if v != "NaN") * step
    peak = max(float(v) for _, v in series[0]["values"] if v != "NaN")
    log.info("client completion_tokens=%d raw counter=%g increase[%s]=%.1f "
             "integrated rate=%.1f peak rate=%.1f tok/s over %.1f s of traffic", client, raw,
             stack.window, increased, integrated, peak, stack.traffic_end - stack.traffic_start)
    assert raw == client
    # increase(x[w]) is rate(x[w]) * w: the rate over the traffic window, times the window
    assert abs(increased - client) <= 0.10 * client, (increased, client)
    # The area under short-window rate() samples (what a panel draws) depends on scrape timing
    # on a loaded 2-core machine (329 of 384 tokens seen once); it is logged above, and only
    # checked to be of the right order.
    assert 0.5 * client <= integrated <= 1.5 * client, (integrated, client)
    assert peak > 0


def test_requests_by_status(stack: Stack) -> None:
    prom = stack.prometheus
    assert scalar(prom, f'sum(halo_requests_total{{model="{MODEL}", status="ok"}})',
                  stack.at) == STREAMS
    failed = query(prom, f'halo_requests_total{{model="{MODEL}", status!="ok"}}', stack.at)
    counted = {r["metric"]["status"]: float(r["value"][1]) for r in failed}
    assert {k: v for k, v in counted.items() if v} == {"context_length_exceeded": 1}


def test_request_gauges_are_zero_at_rest(stack: Stack) -> None:
    for gauge in ("halo_requests_running", "halo_requests_waiting"):
        series = query(stack.prometheus, gauge, stack.at)
        assert {r["metric"]["model"] for r in series} == {MODEL, "gemma3-270m", SPLIT}, series
        assert all(float(r["value"][1]) == 0 for r in series), series


def test_model_lifecycle_metrics(stack: Stack) -> None:
    prom = stack.prometheus
    assert scalar(prom, f'sum(halo_model_loads_total{{model="{MODEL}", result="ok"}})',
                  stack.at) == 1
    assert scalar(prom, f'sum(halo_model_evictions_total{{model="{MODEL}"}})', stack.at) == 1
    assert scalar(prom, f'halo_model_loaded{{model="{MODEL}"}}', stack.at) == 0
    # it was loaded while the traffic ran
    assert scalar(prom, f'max_over_time(halo_model_loaded{{model="{MODEL}"}}[1m])',
                  stack.at) == 1


@pytest.mark.parametrize(("expr", "minimum"), [
    # one load, one unload and one failed request happened inside the window
    ('sum(increase(halo_model_loads_total{result="ok"}[$w]))', 0.9),
    ("sum(increase(halo_model_evictions_total[$w]))", 0.9),
    ('sum(increase(halo_requests_total{status!="ok"}[$w]))', 0.9),
    ('sum(increase(halo_requests_total{status="ok"}[$w]))', STREAMS * 0.9),
    # every stream's first token, end and queue time
    ("sum(increase(halo_time_to_first_token_seconds_count[$w]))", STREAMS * 0.9),
    ("sum(increase(halo_e2e_request_latency_seconds_count[$w]))", STREAMS * 0.9),
    ("sum(increase(halo_queue_time_seconds_count[$w]))", STREAMS * 0.9),
    ("sum(increase(halo_prompt_tokens_total[$w]))", STREAMS * 5),
])
def test_rate_and_increase_see_the_first_events(stack: Stack, expr: str,
                                                 minimum: float) -> None:
    """rate()/increase() only see a series' changes after its first scrape: a series that
    appears with its first event already counted hides that event from every panel."""
    promql = expr.replace("$w", stack.window)
    assert scalar(stack.prometheus, promql, stack.at) >= minimum, promql

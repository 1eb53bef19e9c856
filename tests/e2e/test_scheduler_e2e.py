"""Issue 4 acceptance on a real server with both real models and a real memory budget."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from app.catalog.catalog import Defaults, scan
from app.factory import estimate_entry
from app.hardware.choice import BackendChoice
from tests.conftest import GEMMA, GEMMA_TEMPLATE, SMOLLM, _require
from tests.e2e.server import Server, halo_server

SMOL, GEM = "smollm2", "gemma3-270m"


def models_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for model in (SMOLLM, GEMMA):
        (root / model.name).symlink_to(_require(model))
    (root / "models.toml").write_text(
        '[models.smollm2]\npath = "SmolLM2-135M-Instruct.Q4_1.gguf"\nn_ctx = 1024\nparallel = 2\n'
        '[models.gemma3-270m]\npath = "gemma-3-270m-q4_k_m.gguf"\nn_ctx = 1024\nparallel = 2\n'
        f"chat_template = '''{GEMMA_TEMPLATE}'''\n")
    return root


def needs(root: Path) -> dict[str, int]:
    """Each model's memory as the server counts it (on this machine's CPU backend)."""
    catalog = scan(root, root / "models.toml", Defaults(4096, 4, 300))
    cpu = BackendChoice(backend="cpu", n_gpu_layers=0, use_mmap=True, flash_attn=False)
    return {e.id: estimate_entry(cpu, e).total for e in catalog}


def chat(server: Server, model: str, tokens: int = 4, timeout: float = 120,
         **extra: Any) -> httpx.Response:
    return httpx.post(server.base_url + "/chat/completions", timeout=timeout, json={
        "model": model, "max_tokens": tokens, "temperature": 0,
        "messages": [{"role": "user", "content": "Hello there"}], **extra})


def statuses(server: Server) -> dict[str, str]:
    data = httpx.get(server.base_url + "/models", timeout=10).json()["data"]
    return {m["id"]: m["status"] for m in data}


def running_pids(server: Server) -> dict[str, int]:
    data = httpx.get(server.url + "/models/running", timeout=10).json()["data"]
    return {m["id"]: m["pid"] for m in data}


@pytest.fixture(scope="module")
def one_model_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("one")
    root = models_dir(tmp / "models")
    budget = max(needs(root).values()) + (32 << 20)
    # one decode thread: on a loaded 2-core box two OpenMP threads that spin-wait for each
    # other make a step ~10x slower (a 120-token stream took 225-280 s at load 15)
    with halo_server(root, tmp, ["--memory-budget", str(budget), "--n-threads", "1"]) as server:
        yield server


def test_idle_model_evicted_and_its_worker_gone(one_model_server: Server) -> None:
    server = one_model_server
    assert chat(server, SMOL).status_code == 200
    smol_pid = running_pids(server)[SMOL]
    assert psutil.pid_exists(smol_pid)
    assert chat(server, GEM).status_code == 200
    assert statuses(server) == {SMOL: "unloaded", GEM: "loaded"}
    assert set(running_pids(server)) == {GEM}
    deadline = time.monotonic() + 5
    while psutil.pid_exists(smol_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not psutil.pid_exists(smol_pid)  # the process, and so its memory, is gone


# a ceiling for a loaded CI box, not an expectation (the test takes seconds on a quiet one):
# the other model's reply waits for the whole stream, the swap and a load
SLOW_BOX_TIMEOUT = 600


def test_busy_model_finishes_before_swap(one_model_server: Server) -> None:
    server = one_model_server
    assert chat(server, SMOL).status_code == 200
    result: dict[str, Any] = {}
    streaming = threading.Event()

    def long_stream() -> None:
        body = {"model": SMOL, "max_tokens": 120, "ignore_eos": True, "stream": True,
                "messages": [{"role": "user", "content": "Tell a story."}]}
        lines = []
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                          timeout=SLOW_BOX_TIMEOUT) as resp:
            for line in resp.iter_lines():
                lines.append(line)
                if '"content":' in line:  # generating: the model is busy
                    streaming.set()
        result["text"] = "\n".join(lines)
        result["ended"] = time.monotonic()

    stream = threading.Thread(target=long_stream, daemon=True)
    stream.start()
    assert streaming.wait(SLOW_BOX_TIMEOUT), "the stream never started generating"
    sent_at = time.monotonic()
    other = chat(server, GEM, timeout=SLOW_BOX_TIMEOUT)
    served_at = time.monotonic()
    stream.join(SLOW_BOX_TIMEOUT)
    assert other.status_code == 200
    assert '"finish_reason":"length"' in result["text"]  # never cut short by the swap
    assert sent_at < result["ended"] <= served_at  # the swap waited for the busy stream
    assert statuses(server)[SMOL] == "unloaded"


def test_concurrent_requests_one_load(one_model_server: Server) -> None:
    server = one_model_server
    httpx.post(server.url + "/models/unload", json={"model": SMOL}, timeout=60)
    httpx.post(server.url + "/models/unload", json={"model": GEM}, timeout=60)
    before = httpx.get(server.url + "/metrics", timeout=10).text
    threads = [threading.Thread(target=chat, args=(server, SMOL)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    after = httpx.get(server.url + "/metrics", timeout=10).text

    def loads(text: str) -> float:
        line = next(x for x in text.splitlines()
                    if x.startswith(f'halo_model_loads_total{{model="{SMOL}",result="ok"}}'))
        return float(line.split()[-1])

    assert loads(after) - loads(before) == 1


def test_model_bigger_than_budget_refused_at_once(tmp_path: Path) -> None:
    root = models_dir(tmp_path / "models")
    with halo_server(root, tmp_path, ["--memory-budget", str(200 << 20)]) as server:
        started = time.monotonic()
        resp = chat(server, SMOL)
        assert time.monotonic() - started < 5
        assert resp.status_code == 503
        error = resp.json()["error"]
        assert error["code"] == "insufficient_memory"
        assert "needs" in error["message"]
        assert "budget" in error["message"]


def test_both_fit_no_swaps(tmp_path: Path) -> None:
    root = models_dir(tmp_path / "models")
    budget = sum(needs(root).values()) + (64 << 20)
    with halo_server(root, tmp_path, ["--memory-budget", str(budget)]) as server:
        for _ in range(3):
            assert chat(server, SMOL).status_code == 200
            assert chat(server, GEM).status_code == 200
        pids = running_pids(server)
        assert set(pids) == {SMOL, GEM}
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        evictions = [x for x in metrics.splitlines()
                     if x.startswith("halo_model_evictions_total{") and not x.endswith(" 0.0")]
        assert evictions == []


def test_keepalive_while_model_loads(tmp_path: Path) -> None:
    root = models_dir(tmp_path / "models")
    env = {"HALO_STREAM_COMMIT_SECONDS": "0", "HALO_SSE_PING_SECONDS": "0.1"}
    with halo_server(root, tmp_path, env=env) as server:
        body = {"model": GEM, "max_tokens": 3, "stream": True,
                "messages": [{"role": "user", "content": "hi"}]}
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                          timeout=120) as resp:
            lines = list(resp.iter_lines())
        assert any(line.startswith(":") for line in lines), lines[:5]
        assert "data: [DONE]" in lines

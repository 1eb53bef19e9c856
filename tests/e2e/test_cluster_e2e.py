"""Issue 15 acceptance on loopback: two real `halo node` processes (llama.cpp RPC servers on the
CPU, each capped by --mem) and a real `halo serve` splitting the test model across this box and
both nodes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.catalog.shards import read_model
from app.engine.client import EngineClient, Failed, GenerateRequest, TextDelta, WorkerSpec
from app.scheduler.split import plan
from tests.conftest import SMOLLM, _require
from tests.e2e.nodes import Node, halo_node
from tests.e2e.server import Server, halo_server

MIB = 1 << 20
NODE_MEM = 256 * MIB
# the local pool: `local` (~640 MiB) or `split` (~590 MiB here) or `wide` (~740 MiB here, ~870
# MiB in all) fit, but not two of them; `huge` needs ~490 MiB on a node (see app/cluster.py)
BUDGET = 800 * MIB
PROMPT = [{"role": "user", "content": "Name three colours of the rainbow."}]


def write_models(root: Path, nodes: list[str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / SMOLLM.name).symlink_to(_require(SMOLLM))
    common = f'path = "{SMOLLM.name}"\nparallel = 1\nttl = 0\n'
    (root / "models.toml").write_text(
        # f16 keys like a split model's (the CPU backend's own default is q8_0 keys), so the
        # split answer can be compared token for token
        f'[models.local]\n{common}n_ctx = 512\ncache_type_k = "f16"\n'
        f'[models.split]\n{common}n_ctx = 512\nnodes = "all"\ntensor_split = [1, 1, 1]\n'
        # KV-heavy: its local third fits the budget, the whole would not (see test_admission)
        f'[models.wide]\n{common}n_ctx = 6144\nnodes = "all"\ntensor_split = [1, 1, 1]\n'
        # the nodes' thirds need more than --mem: refused whatever is unloaded
        f'[models.huge]\n{common}n_ctx = 16384\nnodes = "all"\ntensor_split = [1, 1, 1]\n'
        f'[models.one-node]\n{common}n_ctx = 512\nnodes = ["{nodes[0]}"]\n'
        "tensor_split = [1, 1]\n")
    return root


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, list[Node]]]:
    tmp = tmp_path_factory.mktemp("cluster")
    with halo_node(tmp, mem="256MiB") as a, halo_node(tmp, mem="256MiB") as b:
        root = write_models(tmp / "models", [a.address, b.address])
        args = ["--node", a.address, "--node", b.address, "--memory-budget", str(BUDGET),
                "--backend", "cpu", "--n-threads", "1"]
        with halo_server(root, tmp, args) as server:
            yield server, [a, b]


def chat(server: Server, model: str, tokens: int = 24) -> httpx.Response:
    return httpx.post(server.base_url + "/chat/completions", timeout=180, json={
        "model": model, "max_tokens": tokens, "temperature": 0, "messages": PROMPT})


def test_node_reports_its_capped_memory_and_refuses_open_binds(
        cluster: tuple[Server, list[Node]]) -> None:
    _, nodes = cluster
    assert "halo node: serving CPU" in nodes[0].log()
    out = subprocess.run([sys.executable, "-m", "app", "node", "--host", "0.0.0.0", "--port",
                          "1"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "--allow-network" in out.stderr
    probe = subprocess.run([sys.executable, "-m", "app", "probe", "--nodes", "--json"],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "HALO_NODES": ",".join(n.address for n in nodes)})
    assert probe.returncode == 0, probe.stdout + probe.stderr
    report = json.loads(probe.stdout)["nodes"]
    assert [n["status"] for n in report] == ["ok", "ok"]
    assert all(n["free_bytes"] == NODE_MEM and n["version"].startswith("7.") for n in report)


def test_split_answer_is_token_identical_to_local(cluster: tuple[Server, list[Node]]) -> None:
    server, nodes = cluster
    local = chat(server, "local")
    split = chat(server, "split")
    assert local.status_code == 200, local.text
    assert split.status_code == 200, split.text
    text = local.json()["choices"][0]["message"]["content"]
    assert text
    assert split.json()["choices"][0]["message"]["content"] == text
    assert local.json()["usage"] == split.json()["usage"]
    running = httpx.get(server.url + "/models/running", timeout=10).json()["data"]
    split_row = next(r for r in running if r["id"] == "split")
    assert set(split_row["nodes"]) == {"local", *(n.address for n in nodes)}
    for node in nodes:  # llama.cpp's buffers on each node, next to the ledger's estimate
        on_node = split_row["nodes"][node.address]
        assert 0 < on_node["measured_bytes"] <= on_node["reserved_bytes"]


def test_ledger_has_a_budget_per_node_and_admits_on_every_node(
        cluster: tuple[Server, list[Node]]) -> None:
    server, nodes = cluster
    # `wide` does not fit this box alone (its estimate exceeds the budget) but fits with the
    # nodes counted: admitted, and reserved on all three
    catalog = {m["model"]: m for m in
               httpx.get(server.url + "/system", timeout=10).json()["memory"]["ledger"]}
    wide_need = catalog["wide"]["estimate_bytes"]
    assert wide_need > BUDGET
    assert chat(server, "wide", 4).status_code == 200
    memory = httpx.get(server.url + "/system", timeout=10).json()["memory"]
    budgets = {n["node"]: n for n in memory["nodes"]}
    assert list(budgets) == ["local", *(n.address for n in nodes)]
    assert budgets["local"]["budget_bytes"] == BUDGET
    assert all(budgets[n.address]["budget_bytes"] == NODE_MEM for n in nodes)
    assert all(budgets[n.address]["status"] == "ok" for n in nodes)
    wide = next(m for m in memory["ledger"] if m["model"] == "wide")
    for node, need in wide["nodes"].items():
        assert need > 0
        assert budgets[node]["reserved_bytes"] >= need
    # `huge` needs more than a node offers: refused at once, with the sizes per node
    refused = chat(server, "huge", 4)
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert error["code"] == "insufficient_memory"
    for node in ("local", *(n.address for n in nodes)):
        assert node in error["message"]
    assert "needs per node" in error["message"]


def _sse(server: Server, model: str, tokens: int) -> Iterator[dict[str, Any]]:
    body = {"model": model, "max_tokens": tokens, "temperature": 0, "stream": True,
            "messages": PROMPT}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                      timeout=60) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: ") and line != "data: [DONE]":
                yield json.loads(line[6:])


def test_node_killed_mid_stream_ends_the_stream_naming_it(
        cluster: tuple[Server, list[Node]]) -> None:
    server, nodes = cluster
    victim = nodes[1]
    assert chat(server, "split", 2).status_code == 200  # loaded
    killed_at = error = None
    for chunks, event in enumerate(_sse(server, "split", 400), start=1):
        if "error" in event:
            error = event["error"]
            break
        if chunks == 3:
            os.killpg(victim.process.pid, signal.SIGKILL)
            killed_at = time.monotonic()
    assert killed_at is not None
    assert error is not None, "the stream ended without an error"
    assert time.monotonic() - killed_at < 5.0
    assert victim.address in error["message"]
    models = {m["id"]: m for m in httpx.get(server.base_url + "/models", timeout=10).json()["data"]}
    assert models["split"]["status"] == "failed"
    assert chat(server, "local", 4).status_code == 200  # this box keeps serving
    # a load that needs the dead node fails at once, naming it
    again = chat(server, "split", 2)
    assert again.status_code >= 500
    assert victim.address in again.text


def test_node_that_hangs_fails_the_stream_after_the_step_timeout(tmp_path: Path) -> None:
    """A node that stops answering while its box stays up (SIGSTOP: TCP is still
    acknowledged, so no socket error ever comes): the worker's step watchdog ends it."""
    with halo_node(tmp_path) as node:
        asyncio.run(_hang(node))


async def _hang(node: Node) -> None:
    n_layer = read_model(SMOLLM).info.block_count or 0
    split = plan(n_layer, [node.address], [1, 1], local_offload=False)
    spec = WorkerSpec("hang", _require(SMOLLM), n_ctx=512, parallel=1, n_threads=1,
                      n_gpu_layers=split.n_gpu_layers, rpc_nodes=split.nodes,
                      tensor_split=split.tensor_split, rpc_step_timeout=5.0)
    engine = await EngineClient.start(spec)
    try:
        request = GenerateRequest("r", messages=PROMPT, max_tokens=400, temperature=0,
                                  ignore_eos=True)
        stopped_at = None
        failure = None
        async for event in engine.generate(request):
            if isinstance(event, TextDelta) and stopped_at is None:
                os.kill(node.process.pid, signal.SIGSTOP)
                stopped_at = time.monotonic()
            if isinstance(event, Failed):
                failure = event
        assert stopped_at is not None
        assert failure is not None, "the stream ended without an error"
        assert time.monotonic() - stopped_at < 5.0 + 5.0
        assert "no answer from the RPC nodes" in failure.message
        assert node.address in failure.message
    finally:
        os.kill(node.process.pid, signal.SIGCONT)
        await engine.stop()

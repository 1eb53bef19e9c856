"""Cluster settings through the HTTP surface, with the fake engine: a node that is down when
halo starts gets no budget, /system says why, and a model that needs it is refused naming it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory
from tests.e2e.nodes import halo_node
from tests.e2e.server import free_port

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client(models_dir: Path, probe_report: ProbeReport) -> AsyncIterator[httpx.AsyncClient]:
    down = f"127.0.0.1:{free_port()}"  # nothing listens there
    with (models_dir / "models.toml").open("a") as f:
        f.write(f'[models.split]\npath = "SmolLM2-135M-Instruct.Q4_1.gguf"\nn_ctx = 512\n'
                f'nodes = ["{down}"]\n')
    settings = Settings(models_dir=models_dir, nodes=[down], node_retry_seconds=0.2)
    app = create_app(settings, engine_factory=FakeFactory(), probe_report=probe_report)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://halo") as c:
            c.headers["x-node"] = down
            yield c


async def test_node_down_at_startup(client: httpx.AsyncClient) -> None:
    down = client.headers["x-node"]
    memory = (await client.get("/system")).json()["memory"]
    nodes = {n["node"]: n for n in memory["nodes"]}
    assert list(nodes) == ["local", down]
    assert nodes[down]["status"] == "down"
    assert nodes[down]["budget_bytes"] == 0
    assert "connection refused" in nodes[down]["error"]
    split = next(m for m in memory["ledger"] if m["model"] == "split")
    assert set(split["nodes"]) == {"local", down}
    resp = await client.post("/v1/chat/completions", json={
        "model": "split", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 503
    assert resp.json()["error"]["code"] == "insufficient_memory"
    assert down in resp.json()["error"]["message"]


async def test_node_that_comes_up_later_gets_its_budget(client: httpx.AsyncClient,
                                                        tmp_path: Path) -> None:
    """The real `halo node` (llama.cpp's RPC server), started after halo: asked again every
    node_retry_seconds, it gets its budget and the split model is admitted."""
    down = client.headers["x-node"]
    node = halo_node(tmp_path, mem="300MiB", port=int(down.rsplit(":", 1)[1]))
    await asyncio.to_thread(node.__enter__)  # it waits for the node with a loop of its own
    try:
        for _ in range(100):
            nodes = {n["node"]: n for n in (await client.get("/system")).json()["memory"]["nodes"]}
            if nodes[down]["status"] == "ok":
                break
            await asyncio.sleep(0.1)
        assert nodes[down]["budget_bytes"] == 300 << 20
        resp = await client.post("/v1/chat/completions", json={
            "model": "split", "messages": [{"role": "user", "content": "hi"}]})
        assert resp.status_code == 200, resp.text
    finally:
        await asyncio.to_thread(node.__exit__, None, None, None)

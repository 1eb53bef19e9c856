"""POST /models/pull (SSE), POST /models/fit, DELETE /models/{id} and the live catalog, over
HTTP against a loopback hub (fake engine: no model is run here)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from app.hub.remote import HubClient
from tests.api.fake_engine import FakeFactory
from tests.api.sse_util import sse_events
from tests.hub.tiny import tiny_gguf
from tests.hub_fake import FakeHub
from tests.model_headers import write_model

pytestmark = pytest.mark.anyio


@pytest.fixture
def models(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    tiny_gguf(root / "Local-Q8_0.gguf")
    return root


@pytest.fixture
def app(models: Path, hub: FakeHub, probe_report: ProbeReport) -> FastAPI:
    settings = Settings(models_dir=models, catalog_refresh_seconds=0, api_keys=["k"])
    return create_app(settings, engine_factory=FakeFactory(), probe_report=probe_report,
                      hub=lambda: HubClient(hub.url))


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://halo",
                                     headers={"Authorization": "Bearer k"}, timeout=60) as c:
            yield c


async def ids(http: httpx.AsyncClient) -> list[str]:
    r = await http.get("/v1/models")
    assert r.status_code == 200
    return [m["id"] for m in r.json()["data"]]


async def pull(http: httpx.AsyncClient, body: dict[str, Any]) -> list[Any]:
    r = await http.post("/models/pull", json=body)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    return sse_events(r.text)


async def test_pull_streams_ordered_progress_then_the_model_is_listed(
        http: httpx.AsyncClient, hub: FakeHub, src: Path) -> None:
    file = tiny_gguf(src / "Tiny-Q4_K_M.gguf", rows=8000)
    hub.add("org/Tiny-GGUF", file)
    assert await ids(http) == ["Local-Q8_0"]
    events = await pull(http, {"model": "org/Tiny-GGUF:Q4_K_M"})
    assert events[-1] == "[DONE]"
    final = events[-2]
    assert final["status"] == "success"
    assert final["model"] == "Tiny-Q4_K_M"
    assert final["files"] == ["Tiny-Q4_K_M.gguf"]
    progress = [e for e in events[:-2] if e["status"] == "downloading"]
    assert progress
    assert all(set(e) >= {"status", "file", "completed", "total"} for e in progress)
    done = [e["completed"] for e in progress]
    assert done == sorted(done)
    assert done[-1] == progress[-1]["total"] == file.stat().st_size
    # listed without a restart, with where it came from
    r = await http.get("/v1/models/Tiny-Q4_K_M")
    assert r.status_code == 200
    assert r.json()["source"] == "org/Tiny-GGUF:Q4_K_M"
    assert await ids(http) == ["Local-Q8_0", "Tiny-Q4_K_M"]
    # and it can be served (fake engine; the tiny file has no chat template)
    r = await http.post("/v1/completions", json={"model": "Tiny-Q4_K_M", "prompt": "hi"})
    assert r.status_code == 200, r.text


async def test_two_concurrent_pulls_download_once(
        http: httpx.AsyncClient, hub: FakeHub, src: Path) -> None:
    file = tiny_gguf(src / "Both-Q4_K_M.gguf", rows=20_000)
    hub.add("org/Both", file)
    hub.rate = 20e6
    a, b = await asyncio.gather(pull(http, {"model": "org/Both"}),
                                pull(http, {"model": "org/Both"}))
    assert a[-2]["status"] == b[-2]["status"] == "success"
    # one download (the fit checks before it read the header with range requests)
    downloads = [r for r in hub.ranges_of("Both-Q4_K_M.gguf") if r is None]
    assert len(downloads) == 1
    assert sum(e["downloaded_bytes"] for e in (a[-2], b[-2])) == file.stat().st_size
    assert sorted([a[-2]["already_present"], b[-2]["already_present"]]) == [False, True]
    joined = a if a[-2]["already_present"] else b
    assert joined[0]["status"] == "waiting"
    assert "Both-Q4_K_M" in await ids(http)


async def test_refusals_come_before_the_stream(
        http: httpx.AsyncClient, app: FastAPI, hub: FakeHub, src: Path) -> None:
    r = await http.post("/models/pull", json={"model": "not a repo"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_model_ref"
    r = await http.post("/models/pull", json={"model": "org/missing"})
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found_on_hub"
    hub.add("org/Tiny", tiny_gguf(src / "Tiny-Q8_0.gguf"))
    r = await http.post("/models/pull", json={"model": "org/Tiny:Q2_K"})
    assert r.status_code == 404
    assert "choose one of: Q8_0" in r.json()["error"]["message"]
    app.state.halo.store.free = lambda _: 1000
    r = await http.post("/models/pull", json={"model": "org/Tiny"})
    assert r.status_code == 507, r.text
    assert r.json()["error"]["code"] == "insufficient_storage"
    assert "(1000 bytes) free" in r.json()["error"]["message"]
    r = await http.post("/models/pull", json={"model": "org/Tiny"},
                        headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401
    assert not any(p.startswith("/cdn/") for _, p, _ in hub.requests)


async def test_a_model_that_never_fits_needs_force(
        http: httpx.AsyncClient, hub: FakeHub, src: Path) -> None:
    path = write_model(src, "llama-3.3-70b")  # ~42 GB in a 16 GiB budget
    hub.add("meta/Llama-3.3-70B-GGUF", path, sha256="0" * 64)
    r = await http.post("/models/fit", json={"model": "meta/Llama-3.3-70B-GGUF"})
    assert r.status_code == 200
    fit = r.json()
    assert fit["verdict"] == "never"
    assert fit["fits"] is False
    assert fit["budget_bytes"] == 16 << 30
    assert fit["need_bytes"] > 40 << 30
    assert fit["header_bytes_read"] < 16 << 20
    r = await http.post("/models/pull", json={"model": "meta/Llama-3.3-70B-GGUF"})
    assert r.status_code == 503
    assert "never fits" in r.json()["error"]["message"]


async def test_a_sha_mismatch_ends_the_stream_with_an_error(
        http: httpx.AsyncClient, hub: FakeHub, src: Path, models: Path) -> None:
    hub.add("org/Bad", tiny_gguf(src / "Bad-Q4_K_M.gguf"))
    hub.corrupt("org/Bad", "Bad-Q4_K_M.gguf", 1000)
    events = await pull(http, {"model": "org/Bad"})
    assert events[-1] == "[DONE]"
    assert events[-2]["status"] == "error"
    assert events[-2]["error"]["code"] == "checksum_mismatch"
    assert "Bad-Q4_K_M" not in await ids(http)
    assert not (models / "Bad-Q4_K_M.gguf").exists()


async def test_delete_refuses_a_loaded_model_unless_forced(
        http: httpx.AsyncClient, models: Path) -> None:
    r = await http.post("/models/load", json={"model": "Local-Q8_0"})
    assert r.status_code == 200
    r = await http.delete("/models/Local-Q8_0")
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "model_in_use"
    r = await http.delete("/models/Local-Q8_0", params={"force": "true"})
    assert r.status_code == 200
    assert r.json()["files"] == ["Local-Q8_0.gguf"]
    assert not (models / "Local-Q8_0.gguf").exists()
    assert await ids(http) == []
    r = await http.delete("/models/Local-Q8_0")
    assert r.status_code == 404


async def test_the_catalog_follows_the_models_dir(
        http: httpx.AsyncClient, app: FastAPI, models: Path) -> None:
    # a copy in progress (shorter than its header says) is not listed; whole, it is
    whole = tiny_gguf(models.parent / "Copied-Q4_0.gguf", rows=4000).read_bytes()
    (models / "Copied-Q4_0.gguf").write_bytes(whole[: len(whole) // 2])
    assert await ids(http) == ["Local-Q8_0"]
    (models / "Copied-Q4_0.gguf").write_bytes(whole)
    assert await ids(http) == ["Copied-Q4_0", "Local-Q8_0"]
    # removed by hand while loaded: unloaded, then gone
    r = await http.post("/models/load", json={"model": "Copied-Q4_0"})
    assert r.status_code == 200
    engine = app.state.halo.scheduler.state("Copied-Q4_0").engine
    (models / "Copied-Q4_0.gguf").unlink()
    assert await ids(http) == ["Local-Q8_0"]
    assert not engine.alive
    r = await http.post("/v1/completions", json={"model": "Copied-Q4_0", "prompt": "hi"})
    assert r.status_code == 404


async def test_a_broken_models_toml_keeps_the_catalog(
        http: httpx.AsyncClient, models: Path) -> None:
    assert await ids(http) == ["Local-Q8_0"]
    (models / "models.toml").write_text("[models.x\n")
    r = await http.get("/v1/models")
    assert r.status_code == 200
    assert [m["id"] for m in r.json()["data"]] == ["Local-Q8_0"]

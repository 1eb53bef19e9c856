"""Ollama's /api/pull (NDJSON progress) and /api/delete over the model store, against a loopback
hub (fake engine: no model is run here)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from app.hub.remote import HubClient
from tests.api.fake_engine import FakeFactory
from tests.hub.tiny import tiny_gguf
from tests.hub_fake import FakeHub

pytestmark = pytest.mark.anyio


@pytest.fixture
def app(tmp_path: Path, hub: FakeHub, probe_report: ProbeReport) -> FastAPI:
    models = tmp_path / "models"
    models.mkdir()
    settings = Settings(models_dir=models, catalog_refresh_seconds=0)
    return create_app(settings, engine_factory=FakeFactory(), probe_report=probe_report,
                      hub=lambda: HubClient(hub.url))


@pytest.fixture
async def http(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://halo",
                                     timeout=60) as c:
            yield c


async def names(http: httpx.AsyncClient) -> list[str]:
    return [m["name"] for m in (await http.get("/api/tags")).json()["models"]]


async def test_pull_then_delete(http: httpx.AsyncClient, hub: FakeHub, src: Path) -> None:
    hub.add("org/Tiny-GGUF", tiny_gguf(src / "Tiny-Q4_K_M.gguf", rows=8000))
    r = await http.post("/api/pull", json={"model": "hf.co/org/Tiny-GGUF:Q4_K_M"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines[-1] == {"status": "success"}
    progress = [x for x in lines if x["status"].startswith("downloading")]
    assert progress
    assert all({"digest", "total", "completed"} <= set(x) for x in progress)
    assert await names(http) == ["Tiny-Q4_K_M"]
    gone = await http.request("DELETE", "/api/delete", json={"model": "Tiny-Q4_K_M:latest"})
    assert gone.status_code == 200, gone.text
    assert await names(http) == []
    again = await http.request("DELETE", "/api/delete", json={"model": "Tiny-Q4_K_M"})
    assert again.status_code == 404
    assert isinstance(again.json()["error"], str)


async def test_pull_refusals_are_ollama_errors(http: httpx.AsyncClient) -> None:
    r = await http.post("/api/pull", json={"model": "org/Missing-GGUF:Q4_K_M",
                                           "stream": False})
    assert 400 <= r.status_code < 500
    assert isinstance(r.json()["error"], str)

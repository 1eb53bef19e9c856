"""Scheduler behaviour as a client sees it (fake engines; the driver itself is tested in
tests/unit/scheduler/test_driver.py on a fake clock)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.engine.client import EngineLoadError, WorkerSpec
from app.factory import create_app
from app.hardware.probe import ProbeReport
from app.state import AppState
from tests.api.fake_engine import FakeEngine, FakeFactory

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"


def chat(model: str = SMOL, **extra: object) -> dict[str, object]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


async def test_load_of_a_busy_model_returns_at_once(app: FastAPI,
                                                    client: httpx.AsyncClient) -> None:
    state: AppState = app.state.halo
    parallel = state.scheduler.state(SMOL).entry.parallel
    release = asyncio.Event()

    async def hold() -> None:
        async with state.scheduler.lease(SMOL, sequences=parallel):
            await release.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    while state.scheduler.state(SMOL).active < parallel:
        await asyncio.sleep(0)
    resp = await asyncio.wait_for(client.post("/models/load", json={"model": SMOL}), 5)
    assert resp.status_code == 200, resp.text
    assert resp.json()["status"] == "loaded"
    release.set()
    await holder


async def test_n_beyond_the_slots_is_a_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json=chat(n=5))  # parallel is 4
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == "n"
    assert "4" in error["message"]


class DyingFactory:
    """Every load dies, as a worker killed by SIGILL during its warm-up would."""

    def __init__(self) -> None:
        self.calls = 0
        self.fixed = False

    async def __call__(self, spec: WorkerSpec) -> FakeEngine:
        self.calls += 1
        if not self.fixed:
            raise EngineLoadError("worker exited with signal SIGILL during warm-up")
        return FakeEngine(spec)


@pytest.fixture
def dying() -> DyingFactory:
    return DyingFactory()


@pytest.fixture
async def dying_client(models_dir: Path, probe_report: ProbeReport,
                       dying: DyingFactory) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(models_dir=models_dir), engine_factory=dying,
                     probe_report=probe_report)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://halo") as c:
            yield c


async def test_crash_loop_is_bounded_and_explained(dying_client: httpx.AsyncClient,
                                                   dying: DyingFactory) -> None:
    client = dying_client
    codes = []
    for _ in range(8):
        resp = await client.post("/v1/chat/completions", json=chat())
        codes.append(resp.status_code)
        assert resp.status_code == 503
        error = resp.json()["error"]
        assert error["code"] == "model_load_failed"
        assert "SIGILL" in error["message"]
    assert dying.calls == 3  # not restarted on every request
    assert int(resp.headers["Retry-After"]) >= 1
    assert "POST /models/load" in error["message"]
    model = (await client.get(f"/v1/models/{SMOL}")).json()
    assert model["status"] == "failed"
    assert "SIGILL" in model["failure"]
    assert model["failures"] == 3
    assert time.time() < model["retry_at"] < time.time() + 10
    health = (await client.get("/health")).json()
    assert [m["model"] for m in health["failed"]] == [SMOL]
    assert health["failed"][0]["retry_at"] == pytest.approx(model["retry_at"], abs=1)
    dying.fixed = True  # an explicit load retries at once
    resp = await client.post("/models/load", json={"model": SMOL})
    assert resp.status_code == 200
    assert resp.json()["status"] == "loaded"
    assert "failure" not in resp.json()
    assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200


async def test_unload_then_running_list(client: httpx.AsyncClient, factory: FakeFactory) -> None:
    assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200
    running = (await client.get("/models/running")).json()["data"]
    assert [m["id"] for m in running] == [SMOL]
    assert running[0]["sequences_active"] == 0
    assert running[0]["expires_at"] > time.time()
    resp = await client.post("/models/unload", json={"model": SMOL})
    assert resp.json()["unloaded"] is True
    assert not factory.started[0].alive
    assert (await client.get("/models/running")).json()["data"] == []

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory

pytestmark = pytest.mark.anyio


async def test_health_names_backend(client: httpx.AsyncClient) -> None:
    body = (await client.get("/health")).json()
    assert body["status"] == "ok"
    assert body["backend"] == "cpu"
    assert body["models"] == 2


async def test_models_list_shape(client: httpx.AsyncClient, smollm_path: Path) -> None:
    body = (await client.get("/v1/models")).json()
    assert body["object"] == "list"
    by_id = {m["id"]: m for m in body["data"]}
    assert set(by_id) == {"SmolLM2-135M-Instruct.Q4_1", "gemma3-270m"}
    smol = by_id["SmolLM2-135M-Instruct.Q4_1"]
    assert smol["object"] == "model"
    assert smol["owned_by"] == "halo"
    assert smol["status"] == "unloaded"
    assert smol["size_bytes"] == smollm_path.stat().st_size
    assert smol["context_length"] == 8192
    assert by_id["gemma3-270m"]["context_length"] == 32768
    assert by_id["gemma3-270m"]["n_ctx"] == 1024


async def test_unknown_model_is_404_envelope(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/models/nope")
    assert resp.status_code == 404
    assert resp.json() == {"error": {"message": "The model 'nope' does not exist",
                                     "type": "invalid_request_error", "param": "model",
                                     "code": "model_not_found"}}


async def test_one_model_by_id(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v1/models/gemma3-270m")
    assert resp.status_code == 200
    assert resp.json()["id"] == "gemma3-270m"


async def test_unknown_route_is_enveloped(client: httpx.AsyncClient) -> None:
    resp = await client.get("/v2/nothing")
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


async def test_bad_gguf_is_skipped_not_fatal(
    models_dir: Path, factory: FakeFactory, probe_report: ProbeReport
) -> None:
    (models_dir / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)
    (models_dir / "notgguf.gguf").write_bytes(b"hello world, not a model")
    app = create_app(Settings(models_dir=models_dir), engine_factory=factory,
                     probe_report=probe_report)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://halo") as c:
        ids = {m["id"] for m in (await c.get("/v1/models")).json()["data"]}
    assert ids == {"SmolLM2-135M-Instruct.Q4_1", "gemma3-270m"}
    assert {p.path.name for p in app.state.halo.catalog.problems} == {"broken.gguf",
                                                                       "notgguf.gguf"}


@pytest.fixture
def keyed_app(models_dir: Path, factory: FakeFactory, probe_report: ProbeReport) -> FastAPI:
    return create_app(Settings(models_dir=models_dir, api_keys=["k1", "sekrit"]),
                      engine_factory=factory,
                     probe_report=probe_report)


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"Authorization": "Basic sekrit"}, 401),
        ({"Authorization": "Bearer sekrit"}, 200),
        ({"Authorization": "Bearer k1"}, 200),
    ],
)
async def test_api_keys(keyed_app: FastAPI, headers: dict[str, str], status: int) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=keyed_app),
                                 base_url="http://halo") as c:
        resp = await c.get("/v1/models", headers=headers)
        assert resp.status_code == status
        if status == 401:
            assert resp.json()["error"]["code"] == "invalid_api_key"
        assert (await c.get("/health")).status_code == 200  # health needs no key

"""Ollama's model routes (/api/version, tags, ps, show) over the fake engine."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"


async def test_version_and_tags(client: httpx.AsyncClient) -> None:
    r = await client.get("/api/version")
    assert r.status_code == 200
    assert r.json()["version"].count(".") == 2
    models = {m["name"]: m for m in (await client.get("/api/tags")).json()["models"]}
    assert set(models) == {SMOL, "gemma3-270m"}
    smol = models[SMOL]
    assert smol["model"] == SMOL
    assert smol["size"] > 90_000_000
    assert len(smol["digest"]) == 64
    assert smol["details"]["format"] == "gguf"
    assert smol["details"]["family"] == "llama"
    assert smol["details"]["quantization_level"] == "Q4_1"
    assert smol["details"]["parameter_size"] == "135M"
    assert smol["modified_at"].endswith("Z")


async def test_ps_lists_loaded_models(client: httpx.AsyncClient) -> None:
    assert (await client.get("/api/ps")).json() == {"models": []}
    assert (await client.post("/models/load", json={"model": SMOL})).status_code == 200
    running = (await client.get("/api/ps")).json()["models"]
    assert [m["name"] for m in running] == [SMOL]
    assert running[0]["size"] > 0
    assert running[0]["size_vram"] == running[0]["size"]
    assert running[0]["expires_at"].endswith("Z")


async def test_show(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/show", json={"model": SMOL + ":latest"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["details"]["family"] == "llama"
    assert "{%" in body["template"]
    assert body["model_info"]["general.architecture"] == "llama"
    assert "completion" in body["capabilities"]
    legacy = await client.post("/api/show", json={"name": "gemma3-270m"})
    assert legacy.status_code == 200
    assert legacy.json()["details"]["family"] == "gemma3"


@pytest.mark.parametrize(("path", "body", "status"), [
    ("/api/show", {"model": "nope"}, 404),
    ("/api/show", {}, 404),
    ("/api/show", {"model": 5}, 400),
    ("/api/nothing", {}, 404),
])
async def test_errors_are_ollama_shaped(client: httpx.AsyncClient, path: str,
                                        body: dict[str, object], status: int) -> None:
    r = await client.post(path, json=body)
    assert r.status_code == status
    assert set(r.json()) == {"error"}
    assert isinstance(r.json()["error"], str)

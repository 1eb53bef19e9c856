"""The `speculative` request field and models.toml settings, through the HTTP API (fake
engine): validation before the first byte, the worker spec, and the Prometheus counters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.engine.client import Speculation
from tests.api.fake_engine import FakeFactory

pytestmark = pytest.mark.anyio

GEMMA = "gemma3-270m"  # from the models_dir fixture's models.toml: no speculative settings


@pytest.fixture
def models_dir(models_dir: Path) -> Path:
    """smol with a copy of itself as draft model (speculative max 6); gemma without."""
    toml = models_dir / "models.toml"
    toml.write_text(toml.read_text() + (
        '\n[models.smol]\npath = "SmolLM2-135M-Instruct.Q4_1.gguf"\ndraft = "smol-draft"\n'
        'speculative = {type = "draft", max = 6}\n'
        '\n[models.smol-draft]\npath = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
        'speculative = {type = "off"}\n'
    ))
    return models_dir


def chat(model: str, **kw: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **kw}


async def counter(client: httpx.AsyncClient, name: str, model: str) -> float:
    text = (await client.get("/metrics")).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and s.labels.get("model") == model:
                return float(s.value)
    raise AssertionError(f"{name}{{model={model}}} missing")


async def test_models_toml_settings_reach_the_worker(client: httpx.AsyncClient,
                                                     factory: FakeFactory,
                                                     models_dir: Path) -> None:
    resp = await client.post("/v1/chat/completions", json=chat("smol"))
    assert resp.status_code == 200
    spec = factory.started[-1].spec
    assert spec.speculative == Speculation("draft", 6)
    assert spec.draft_path == models_dir / "SmolLM2-135M-Instruct.Q4_1.gguf"
    resp = await client.post("/v1/chat/completions", json=chat(GEMMA))
    assert resp.status_code == 200
    spec = factory.started[-1].spec
    assert spec.speculative == Speculation("ngram", 64, "auto")  # the default
    assert spec.draft_path is None


async def test_request_field_is_passed_and_counted(client: httpx.AsyncClient,
                                                   factory: FakeFactory) -> None:
    assert await counter(client, "halo_spec_proposed_tokens_total", "smol") == 0
    resp = await client.post("/v1/chat/completions", json=chat(
        "smol", speculative={"type": "ngram", "max": 3}))
    assert resp.status_code == 200
    assert factory.started[-1].requests[-1].speculative == Speculation("ngram", 3)
    resp = await client.post("/v1/chat/completions", json=chat(
        "smol", speculative={"type": "draft"}, stream=True))
    assert resp.status_code == 200
    assert factory.started[-1].requests[-1].speculative == Speculation("draft", 6)
    assert await counter(client, "halo_spec_proposed_tokens_total", "smol") == 8
    assert await counter(client, "halo_spec_accepted_tokens_total", "smol") == 6
    resp = await client.post("/v1/chat/completions", json=chat("smol"))
    assert factory.started[-1].requests[-1].speculative is None  # the model's default


@pytest.mark.parametrize(("model", "field", "needle"), [
    (GEMMA, {"type": "draft"}, "no draft model"),
    ("smol", {"type": "ngram", "max": 7}, "at most 6"),
    ("smol", {"type": "medusa"}, "speculative"),
    ("smol", {"type": "ngram", "k": 2}, "speculative"),
    ("smol", {"max": 0}, "speculative"),
])
async def test_bad_speculative_field_is_a_400(client: httpx.AsyncClient, model: str,
                                              field: dict[str, Any], needle: str) -> None:
    resp = await client.post("/v1/completions", json={
        "model": model, "prompt": "x", "speculative": field, "stream": True})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert needle in error["message"]

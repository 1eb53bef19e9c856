"""Input that used to reach (and kill) a worker, or answer 500: refused with 400 up front."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.api.errors import ENGINE_CODES, status_of
from app.errors import EngineCode, EngineFailure
from tests.api.fake_engine import FakeFactory

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"
LONE = "\ud800"  # a lone UTF-16 surrogate, as JSON "\ud800" decodes


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": SMOL, "messages": [{"role": "user", "content": "hi"}], **extra}


def test_every_engine_code_has_one_mapping() -> None:
    assert set(ENGINE_CODES) == set(EngineCode)
    for code in EngineCode:
        status, type_ = status_of(EngineFailure(code, "x"))
        assert 400 <= status < 600
        assert type_


@pytest.mark.parametrize("prompt", ["", [""]])
async def test_empty_completions_prompt_is_400(client: httpx.AsyncClient,
                                               prompt: str | list[str]) -> None:
    resp = await client.post("/v1/completions", json={"model": SMOL, "prompt": prompt})
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "prompt"


def _raw(body: dict[str, Any]) -> bytes:
    """JSON with lone surrogates kept as escapes (json.dumps would too: ensure_ascii)."""
    import json
    return json.dumps(body).encode()


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": f"a{LONE}b"}]),
     "messages"),
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": [
        {"type": "text", "text": LONE}]}]), "messages"),
    ("/v1/chat/completions", chat(tools=[{"type": "function", "function": {
        "name": "f", "description": LONE, "parameters": {"type": "object"}}}]), "tools"),
    ("/v1/chat/completions", chat(response_format={"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "string", "pattern": f"^{LONE}$"}}}),
     "response_format"),
    ("/v1/chat/completions", chat(stop=[LONE]), "stop"),
    ("/v1/completions", {"model": SMOL, "prompt": f"x{LONE}"}, "prompt"),
    ("/v1/completions", {"model": SMOL, "prompt": [LONE]}, "prompt"),
])
async def test_lone_surrogates_are_400_before_the_worker(
    client: httpx.AsyncClient, factory: FakeFactory, path: str, body: dict[str, Any], param: str
) -> None:
    resp = await client.post(path, content=_raw(body),
                             headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["param"] == param
    assert "Unicode" in error["message"] or "valid string" in error["message"]
    assert all(not engine.requests for engine in factory.started)


@pytest.mark.parametrize("key", ["²", "1" * 5000, "-1", " 1", "0x10", "١"])
async def test_logit_bias_keys_must_be_ascii_token_ids(client: httpx.AsyncClient,
                                                       key: str) -> None:
    resp = await client.post("/v1/chat/completions", json=chat(logit_bias={key: 1}))
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["param"] == "logit_bias"


@pytest.mark.parametrize("field", [
    "temperature", "top_p", "n", "stream", "logprobs", "presence_penalty",
    "frequency_penalty", "max_tokens", "seed", "stop", "top_logprobs", "logit_bias",
    "stream_options", "response_format", "tools", "tool_choice", "user", "top_k", "min_p",
    "repeat_penalty", "parallel_tool_calls", "max_completion_tokens",
])
async def test_null_optional_fields_mean_default(client: httpx.AsyncClient, field: str) -> None:
    resp = await client.post("/v1/chat/completions", json=chat(**{field: None}))
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("field", ["temperature", "n", "stream", "logprobs", "echo",
                                   "max_tokens", "best_of", "suffix"])
async def test_null_fields_of_completions(client: httpx.AsyncClient, field: str) -> None:
    resp = await client.post("/v1/completions",
                             json={"model": SMOL, "prompt": "hi", field: None})
    assert resp.status_code == 200, resp.text


@pytest.mark.parametrize("stream", [False, True])
async def test_request_not_started_when_the_worker_died_runs_again(
    client: httpx.AsyncClient, factory: FakeFactory, stream: bool
) -> None:
    resp = await client.post("/v1/chat/completions", json=chat(
        stream=stream, messages=[{"role": "user", "content": "DIEDBEFORE"}]))
    assert resp.status_code == 200, resp.text
    assert "fake" in resp.text
    assert sum(len(e.requests) for e in factory.started) == 2

"""Every error a client can cause: a 4xx OpenAI envelope, and the server keeps serving."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory
from tests.api.sse_util import sse_events

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"
HELLO = [{"role": "user", "content": "hi"}]


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": SMOL, "messages": HELLO, **extra}


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (chat(max_tokens=-1), "max_tokens"),
        (chat(max_tokens="ten"), "max_tokens"),
        (chat(temperature=5), "temperature"),
        (chat(n=0), "n"),
        (chat(n=5), "n"),  # SmolLM2 is served with 4 slots
        (chat(n=17), "n"),
        (chat(stop=["x"] * 10_000), "stop"),
        (chat(stop=""), "stop"),
        (chat(logit_bias={"abc": 1}), "logit_bias"),
        (chat(logit_bias={"1": 500}), "logit_bias"),
        (chat(logit_bias={"99999999": 1}), "logit_bias"),
        ({"model": SMOL, "messages": []}, "messages"),
        ({"model": SMOL}, "messages"),
        ({"messages": HELLO}, "model"),
        ({"model": SMOL, "messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"model": SMOL, "messages": [{"role": "user"}]}, "messages[0]"),
        ({"model": SMOL, "messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
        ({"model": SMOL, "messages": "hello"}, "messages"),
        (chat(tools=[{"type": "function", "function": {"description": "f"}}]), "tools"),
        (chat(tools=[{"type": "function", "function": {"name": "f"}}],
              tool_choice={"type": "function", "function": {"name": "g"}}), "tool_choice"),
        (chat(tool_choice="required"), "tool_choice"),
        (chat(response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "not": {}}}}), "response_format"),
        (chat(response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "integer", "minimum": 0}}}), "response_format"),
        (chat(response_format={"type": "json_schema"}), "response_format"),
        (chat(response_format={"type": "yaml"}), "response_format.type"),
        (chat(top_logprobs=3), "top_logprobs"),
        (chat(logprobs=True, top_logprobs=21), "top_logprobs"),
        (chat(stream="yes please"), "stream"),
    ],
)
async def test_invalid_chat_is_400_naming_param(
    client: httpx.AsyncClient, body: dict[str, Any], param: str
) -> None:
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    # and the server keeps serving
    ok = await client.post("/v1/chat/completions", json=chat())
    assert ok.status_code == 200


@pytest.mark.parametrize("raw", [b"{not json", b"", b"[]", b"null", b'{"model": '])
async def test_malformed_json_is_400(client: httpx.AsyncClient, raw: bytes) -> None:
    resp = await client.post("/v1/chat/completions", content=raw,
                             headers={"content-type": "application/json"})
    assert resp.status_code == 400
    assert resp.json()["error"]["type"] == "invalid_request_error"


async def test_huge_body_is_413(client: httpx.AsyncClient) -> None:
    big = "x" * (20 << 20)
    resp = await client.post("/v1/chat/completions",
                             json={"model": SMOL, "messages": [{"role": "user", "content": big}]})
    assert resp.status_code == 413
    assert resp.json()["error"]["code"] == "request_too_large"
    assert (await client.post("/v1/chat/completions", json=chat())).status_code == 200


async def test_unknown_model_is_404_not_a_fallback(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": HELLO})
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("stream", [False, True])
async def test_context_overflow_is_400_before_first_byte(
    client: httpx.AsyncClient, stream: bool
) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": SMOL, "stream": stream,
        "messages": [{"role": "user", "content": "FAIL:context_length_exceeded"}]})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["code"] == "context_length_exceeded"


async def test_error_after_stream_start_is_in_band(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": SMOL, "stream": True, "messages": [{"role": "user", "content": "CRASH now"}]})
    assert resp.status_code == 200
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    assert events[-2]["error"]["code"] == "worker_crashed"


async def test_chat_needs_a_template(tmp_path: Path, gemma_path: Path,
                                     probe_report: ProbeReport) -> None:
    root = tmp_path / "m"
    root.mkdir()
    (root / gemma_path.name).symlink_to(gemma_path)
    app = create_app(Settings(models_dir=root), engine_factory=FakeFactory(),
                     probe_report=probe_report)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://halo") as c:
        resp = await c.post("/v1/chat/completions",
                            json={"model": "gemma-3-270m-q4_k_m", "messages": HELLO})
        assert resp.status_code == 400
        assert "chat template" in resp.json()["error"]["message"]
        ok = await c.post("/v1/completions", json={"model": "gemma-3-270m-q4_k_m",
                                                    "prompt": "hi"})
        assert ok.status_code == 200

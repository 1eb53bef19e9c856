"""Responses, Messages and Ollama chat over the fake engine: wire shapes, streams = folds,
errors in each protocol's envelope."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"
TOOLS = [{"type": "function", "name": "get_weather", "description": "weather",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]


def named_events(body: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    name = ""
    for line in body.splitlines():
        if line.startswith("event: "):
            name = line[len("event: "):]
        elif line.startswith("data: "):
            out.append((name, json.loads(line[len("data: "):])))
    return out


async def test_responses_text_stream_and_store(client: httpx.AsyncClient) -> None:
    body = {"model": SMOL, "input": "hi", "instructions": "be kind"}
    r = await client.post("/v1/responses", json=body)
    assert r.status_code == 200, r.text
    whole = r.json()
    assert whole["object"] == "response"
    assert whole["status"] == "completed"
    assert whole["output"][0]["content"][0]["text"] == "Hello from the fake engine."
    assert whole["usage"]["input_tokens"] > 0
    got = await client.get(f"/v1/responses/{whole['id']}")
    assert got.json() == whole
    s = await client.post("/v1/responses", json={**body, "stream": True})
    events = named_events(s.text)
    assert [name for name, _ in events][:2] == ["response.created", "response.in_progress"]
    assert all(name == data["type"] for name, data in events)
    final = events[-1][1]["response"]
    assert final["output"][0]["content"] == whole["output"][0]["content"]
    deleted = await client.delete(f"/v1/responses/{whole['id']}")
    assert deleted.json()["deleted"] is True
    missing = await client.get(f"/v1/responses/{whole['id']}")
    assert missing.status_code == 404
    assert missing.json()["error"]["param"] == "response_id"


async def test_responses_chain_and_tool_call(client: httpx.AsyncClient,
                                             factory: FakeFactory) -> None:
    first = (await client.post("/v1/responses", json={
        "model": SMOL, "input": "TOOLCALL please", "tools": TOOLS,
        "instructions": "sys"})).json()
    call = first["output"][-1]
    assert call["type"] == "function_call"
    assert call["name"] == "get_weather"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    second = await client.post("/v1/responses", json={
        "model": SMOL, "previous_response_id": first["id"], "instructions": "sys",
        "input": [{"type": "function_call_output", "call_id": call["call_id"],
                   "output": "sunny"}]})
    assert second.status_code == 200, second.text
    messages = factory.started[0].requests[-1].messages
    assert messages is not None
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool"]
    assert messages[2]["tool_calls"][0]["id"] == call["call_id"]
    assert messages[3] == {"role": "tool", "tool_call_id": call["call_id"], "content": "sunny"}
    bad = await client.post("/v1/responses", json={"model": SMOL, "input": "x",
                                                   "previous_response_id": "resp_nope"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "previous_response_id"


async def test_responses_refusals_and_ignored_tools(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/responses", json={
        "model": SMOL, "input": "hi", "tools": [{"type": "web_search"}, {"type": "custom",
                                                                         "name": "x"}],
        "include": ["reasoning.encrypted_content"], "unknown_field": 1})
    assert r.status_code == 200, r.text
    for body, param in [({"model": SMOL, "input": "hi", "temperature": 9}, "temperature"),
                        ({"model": "nope", "input": "hi"}, "model"),
                        ({"model": SMOL, "input": []}, "input"),
                        ({"model": SMOL, "input": [{"role": "robot", "content": "x"}]},
                         "input[0].role")]:
        r = await client.post("/v1/responses", json=body)
        assert r.status_code in (400, 404), r.text
        assert r.json()["error"]["param"] == param
    r = await client.post("/v1/responses/input_tokens", json={"model": SMOL, "input": "a b c"})
    assert r.json() == {"object": "response.input_tokens", "input_tokens": 3}


async def test_messages_text_stream_and_tool_use(client: httpx.AsyncClient) -> None:
    body = {"model": SMOL, "max_tokens": 100000, "system": "sys",
            "messages": [{"role": "user", "content": "hi"}]}
    r = await client.post("/v1/messages", json=body)
    assert r.status_code == 200, r.text
    msg = r.json()
    assert msg["content"] == [{"type": "text", "text": "Hello from the fake engine."}]
    assert msg["stop_reason"] == "end_turn"
    s = await client.post("/v1/messages", json={**body, "stream": True})
    names = [name for name, _ in named_events(s.text)]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    text = "".join(d["delta"]["text"] for n, d in named_events(s.text)
                   if n == "content_block_delta")
    assert text == msg["content"][0]["text"]
    tools = [{"name": "get_weather", "input_schema": {"type": "object"}},
             {"type": "bash_20250124", "name": "bash"}]
    r = await client.post("/v1/messages", json={**body, "tools": tools, "messages": [
        {"role": "user", "content": "TOOLCALL now"}]})
    msg = r.json()
    assert msg["stop_reason"] == "tool_use"
    assert msg["content"][-1]["input"] == {"city": "Paris"}
    assert msg["content"][-1]["id"].startswith("toolu_")
    count = await client.post("/v1/messages/count_tokens", json={
        "model": SMOL, "messages": [{"role": "user", "content": "one two"}]})
    assert count.json() == {"input_tokens": 2}


async def test_messages_errors_are_anthropic_shaped(client: httpx.AsyncClient) -> None:
    for body, status in [({"model": SMOL, "messages": [{"role": "user", "content": "x"}]}, 400),
                         ({"model": "nope", "max_tokens": 5,
                           "messages": [{"role": "user", "content": "x"}]}, 404),
                         ({"model": SMOL, "max_tokens": 5, "messages": []}, 400)]:
        r = await client.post("/v1/messages", json=body)
        assert r.status_code == status
        err = r.json()
        assert err["type"] == "error"
        assert err["error"]["type"] in ("invalid_request_error", "not_found_error")
    r = await client.post("/v1/messages", json={
        "model": SMOL, "max_tokens": 5, "stream": True,
        "messages": [{"role": "user", "content": "CRASH it"}]})
    assert named_events(r.text)[-1][0] == "error"


async def test_ollama_chat_and_generate(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/chat", json={"model": SMOL + ":latest", "stream": False,
                                             "messages": [{"role": "user", "content": "hi"}],
                                             "options": {"temperature": 0, "num_predict": 3}})
    assert r.status_code == 200, r.text
    whole = r.json()
    assert whole["message"]["content"] == "Hello from the"
    assert whole["done_reason"] == "length"
    s = await client.post("/api/chat", json={"model": SMOL, "options": {"num_predict": 3},
                                             "messages": [{"role": "user", "content": "hi"}]})
    lines = [json.loads(line) for line in s.text.splitlines()]
    assert "".join(x["message"]["content"] for x in lines) == whole["message"]["content"]
    assert lines[-1]["done"] is True
    g = await client.post("/api/generate", json={"model": SMOL, "prompt": "hi",
                                                 "stream": False})
    assert g.json()["response"] == "Hello from the fake engine."
    load = await client.post("/api/generate", json={"model": SMOL})
    assert load.json()["done_reason"] == "load"
    unload = await client.post("/api/chat", json={"model": SMOL, "messages": [],
                                                  "keep_alive": 0})
    assert unload.json()["done_reason"] == "unload"
    bad = await client.post("/api/chat", json={"model": SMOL, "keep_alive": "soon",
                                               "messages": []})
    assert bad.status_code == 400
    assert isinstance(bad.json()["error"], str)


async def test_ollama_keep_alive_sets_the_ttl(client: httpx.AsyncClient) -> None:
    await client.post("/api/generate", json={"model": SMOL, "keep_alive": "1h"})
    ps = (await client.get("/api/ps")).json()["models"]
    assert ps[0]["expires_at"] > "2026"
    running = (await client.get("/models/running")).json()["data"][0]
    assert 3500 < running["expires_at"] - running["idle_since"] <= 3600


async def test_models_toml_caps_max_tokens(models_dir: Path, probe_report: ProbeReport) -> None:
    toml = models_dir / "models.toml"
    toml.write_text(toml.read_text() + '[models.smol]\npath = "SmolLM2-135M-Instruct.Q4_1.gguf"\n'
                    'max_tokens = 3\nstop = ["<end>"]\n')
    factory = FakeFactory()
    app = create_app(Settings(models_dir=models_dir), engine_factory=factory,
                     probe_report=probe_report)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://halo") as client:
        for body in ({"max_tokens": 100_000}, {}, {"max_tokens": 2}):
            r = await client.post("/v1/messages", json={
                "model": "smol", "max_tokens": 100_000, **body,
                "messages": [{"role": "user", "content": "hi"}]})
            assert r.status_code == 200, r.text
        r = await client.post("/v1/responses", json={"model": "smol", "input": "hi"})
        assert r.json()["status"] == "incomplete"
    requests = factory.started[0].requests
    assert [q.max_tokens for q in requests] == [3, 3, 2, 3]
    assert all(q.stop == ["<end>"] for q in requests)


@pytest.mark.parametrize(("path", "shape"), [
    ("/v1/responses", "openai"), ("/v1/messages", "anthropic"), ("/api/chat", "ollama")])
async def test_body_limit_uses_each_family_envelope(
        models_dir: Path, probe_report: ProbeReport, path: str, shape: str) -> None:
    app = create_app(Settings(models_dir=models_dir, max_body_bytes=1024),
                     engine_factory=FakeFactory(), probe_report=probe_report)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://halo") as client:
        r = await client.post(path, content=b"{" + b" " * 4000 + b"}",
                              headers={"content-type": "application/json"})
    assert r.status_code == 413
    body = r.json()
    if shape == "openai":
        assert body["error"]["code"] == "request_too_large"
    elif shape == "anthropic":
        assert body["error"]["type"] == "request_too_large"
    else:
        assert isinstance(body["error"], str)

"""response_format reaches the engine as a checked JSON schema; refusals are 400s."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.fake_engine import FakeFactory
from tests.api.sse_util import sse_events

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"
HELLO = [{"role": "user", "content": "hi"}]
SCHEMA = {"type": "object", "properties": {"a": {"type": "string", "maxLength": 8}},
          "required": ["a"], "additionalProperties": False}


async def _sent(client: httpx.AsyncClient, factory: FakeFactory, **extra: object) -> object:
    resp = await client.post("/v1/chat/completions",
                             json={"model": SMOL, "messages": HELLO, **extra})
    assert resp.status_code == 200, resp.text
    return factory.started[-1].requests[-1].json_schema


async def test_json_object_is_any_object(client: httpx.AsyncClient,
                                         factory: FakeFactory) -> None:
    got = await _sent(client, factory, response_format={"type": "json_object"})
    assert got == {"type": "object"}


async def test_json_schema_passes_through(client: httpx.AsyncClient,
                                          factory: FakeFactory) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "t", "schema": SCHEMA, "strict": True}}
    assert await _sent(client, factory, response_format=fmt) == SCHEMA


async def test_text_has_no_schema(client: httpx.AsyncClient, factory: FakeFactory) -> None:
    assert await _sent(client, factory, response_format={"type": "text"}) is None
    assert await _sent(client, factory) is None


async def test_unsupported_keyword_is_named(client: httpx.AsyncClient) -> None:
    fmt = {"type": "json_schema",
           "json_schema": {"name": "t", "schema": {"type": "object", "patternProperties": {}}}}
    resp = await client.post("/v1/chat/completions",
                             json={"model": SMOL, "messages": HELLO, "response_format": fmt})
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert error["param"] == "response_format"
    assert "patternProperties" in error["message"]


TOOLS: list[dict[str, Any]] = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
ASK_TOOL = [{"role": "user", "content": "TOOLCALL weather in Paris?"}]


async def test_tool_call_non_stream(client: httpx.AsyncClient, factory: FakeFactory) -> None:
    resp = await client.post("/v1/chat/completions",
                             json={"model": SMOL, "messages": ASK_TOOL, "tools": TOOLS})
    assert resp.status_code == 200, resp.text
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] == "Let me look."
    [call] = choice["message"]["tool_calls"]
    assert call["type"] == "function"
    assert call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}
    sent = factory.started[-1].requests[-1]
    assert sent.tools is not None
    assert sent.json_schema is None


async def test_tool_call_stream(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": SMOL, "messages": ASK_TOOL, "tools": TOOLS, "stream": True})
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    deltas = [e["choices"][0]["delta"] for e in events[:-1]]
    content = "".join(d.get("content") or "" for d in deltas)
    assert content == "Let me look."
    parts = [tc for d in deltas for tc in d.get("tool_calls", [])]
    assert parts[0]["function"]["name"] == "get_weather"
    assert parts[0]["id"]
    assert len(parts) >= 2  # name first, then the arguments
    assert "".join(p["function"]["arguments"] for p in parts) == '{"city": "Paris"}'
    assert events[-2]["choices"][0]["finish_reason"] == "tool_calls"


async def test_forced_tool_sends_grammar(client: httpx.AsyncClient,
                                         factory: FakeFactory) -> None:
    for choice in ("required", {"type": "function", "function": {"name": "get_weather"}}):
        resp = await client.post("/v1/chat/completions", json={
            "model": SMOL, "messages": HELLO, "tools": TOOLS, "tool_choice": choice})
        assert resp.status_code == 200
        sent = factory.started[-1].requests[-1]
        assert sent.json_schema is not None
        assert sent.json_schema_param == "tools"
        assert sent.json_schema["properties"]["arguments"] == TOOLS[0]["function"]["parameters"]


async def test_tool_choice_none_offers_nothing(client: httpx.AsyncClient,
                                               factory: FakeFactory) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": SMOL, "messages": ASK_TOOL, "tools": TOOLS, "tool_choice": "none"})
    assert resp.json()["choices"][0]["finish_reason"] == "stop"
    assert "<tool_call>" in resp.json()["choices"][0]["message"]["content"]
    assert factory.started[-1].requests[-1].tools is None


async def test_reasoning_split(client: httpx.AsyncClient) -> None:
    ask = {"model": SMOL, "messages": [{"role": "user", "content": "THINK please"}]}
    message = (await client.post("/v1/chat/completions", json=ask)).json()["choices"][0]["message"]
    assert message["content"] == "Done."
    assert message["reasoning_content"] == message["reasoning"] == "plan it"
    resp = await client.post("/v1/chat/completions", json={**ask, "stream": True})
    deltas = [e["choices"][0]["delta"] for e in sse_events(resp.text)[:-1]]
    assert "".join(d.get("reasoning_content") or "" for d in deltas).strip() == "plan it"
    assert "".join(d.get("content") or "" for d in deltas) == "Done."

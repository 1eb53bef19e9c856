from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.fake_engine import REPLY, FakeFactory
from tests.api.sse_util import sse_events

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"
HELLO = [{"role": "user", "content": "hi"}]


async def test_chat_non_stream_shape(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": SMOL, "messages": HELLO})
    assert resp.status_code == 200
    body = resp.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    assert body["model"] == SMOL
    assert body["choices"] == [{"index": 0, "logprobs": None, "finish_reason": "stop",
                                "message": {"role": "assistant", "content": "".join(REPLY)}}]
    assert body["usage"]["completion_tokens"] == len(REPLY)
    assert body["usage"]["total_tokens"] == body["usage"]["prompt_tokens"] + len(REPLY)
    assert body["usage"]["prompt_tokens_details"] == {"cached_tokens": 0}


async def test_chat_stream_contract(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": SMOL, "messages": HELLO, "stream": True,
        "stream_options": {"include_usage": True}})
    assert resp.status_code == 200
    assert resp.headers["content-type"].startswith("text/event-stream")
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    chunks: list[dict[str, Any]] = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert len({c["id"] for c in chunks}) == 1
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
    assert text == "".join(REPLY)
    finish = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finish[-1] == "stop"
    assert all(f is None for f in finish[:-1])
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    assert usage_chunk["usage"]["completion_tokens"] == len(REPLY)


async def test_stream_without_include_usage_has_no_usage_chunk(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions",
                             json={"model": SMOL, "messages": HELLO, "stream": True})
    chunks = sse_events(resp.text)[:-1]
    assert all(c["choices"] for c in chunks)
    assert "usage" not in chunks[-1]


async def test_max_tokens_gives_length(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions",
                             json={"model": SMOL, "messages": HELLO, "max_tokens": 2})
    choice = resp.json()["choices"][0]
    assert choice["finish_reason"] == "length"
    assert choice["message"]["content"] == "".join(REPLY[:2])


async def test_n_two_choices(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions",
                             json={"model": SMOL, "messages": HELLO, "n": 2})
    assert [c["index"] for c in resp.json()["choices"]] == [0, 1]


async def test_completions_stream_and_echo(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/completions", json={"model": "gemma3-270m", "prompt": "Once",
                                                      "echo": True, "max_tokens": 3})
    body = resp.json()
    assert body["object"] == "text_completion"
    assert body["choices"][0]["text"] == "Once" + "".join(REPLY[:3])
    resp = await client.post("/v1/completions",
                             json={"model": "gemma3-270m", "prompt": "Once", "stream": True})
    events = sse_events(resp.text)
    assert events[-1] == "[DONE]"
    assert "".join(c["choices"][0]["text"] for c in events[:-1]) == "".join(REPLY)
    assert events[-2]["choices"][0]["finish_reason"] == "stop"


async def test_parameters_reach_the_engine(client: httpx.AsyncClient,
                                           factory: FakeFactory) -> None:
    await client.post("/v1/chat/completions", json={
        "model": SMOL, "messages": [{"role": "system", "content": "be brief"},
                                    {"role": "user", "content": [{"type": "text", "text": "a"},
                                                                 {"type": "text", "text": "b"}]}],
        "temperature": 0.5, "top_p": 0.9, "top_k": 40, "seed": -1, "stop": "END",
        "max_completion_tokens": 7, "logit_bias": {"42": -100}, "some_unknown_field": 1})
    req = factory.started[0].requests[0]
    assert req.messages == [{"role": "system", "content": "be brief"},
                            {"role": "user", "content": "ab"}]
    assert (req.temperature, req.top_p, req.top_k) == (0.5, 0.9, 40)
    assert req.seed == 2**32 - 1
    assert req.stop == ["END"]
    assert req.max_tokens == 7
    assert req.logit_bias == {42: -100.0}


async def test_concurrent_requests_share_one_load(client: httpx.AsyncClient,
                                                  factory: FakeFactory) -> None:
    import asyncio

    bodies = [{"model": SMOL, "messages": HELLO} for _ in range(5)]
    results = await asyncio.gather(*(client.post("/v1/chat/completions", json=b)
                                     for b in bodies))
    assert all(r.status_code == 200 for r in results)
    assert len(factory.started) == 1

"""logprobs / top_logprobs in the OpenAI shapes (chat and completions, streamed or not)."""

from __future__ import annotations

import httpx
import pytest

from tests.api.fake_engine import REPLY, FakeFactory
from tests.api.sse_util import sse_events

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"
HELLO = [{"role": "user", "content": "hi"}]


async def test_chat_logprobs(client: httpx.AsyncClient, factory: FakeFactory) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": SMOL, "messages": HELLO, "logprobs": True, "top_logprobs": 2})
    assert resp.status_code == 200, resp.text
    assert factory.started[-1].requests[-1].logprobs == 2
    content = resp.json()["choices"][0]["logprobs"]["content"]
    assert [c["token"] for c in content] == REPLY
    first = content[0]
    assert first["logprob"] == -0.5
    assert first["bytes"] == list(b"Hello")
    assert first["top_logprobs"] == [
        {"token": "alt0", "logprob": -1.0, "bytes": list(b"alt0")},
        {"token": "alt1", "logprob": -2.0, "bytes": list(b"alt1")}]


async def test_chat_logprobs_stream(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": SMOL, "messages": HELLO, "logprobs": True, "stream": True})
    chunks = sse_events(resp.text)[:-1]
    tokens = [c["token"] for chunk in chunks if chunk["choices"][0]["logprobs"]
              for c in chunk["choices"][0]["logprobs"]["content"]]
    assert tokens == REPLY


async def test_no_logprobs_by_default(client: httpx.AsyncClient, factory: FakeFactory) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": SMOL, "messages": HELLO})
    assert resp.json()["choices"][0]["logprobs"] is None
    assert factory.started[-1].requests[-1].logprobs is None


@pytest.mark.parametrize("stream", [False, True])
async def test_completion_logprobs(client: httpx.AsyncClient, stream: bool) -> None:
    resp = await client.post("/v1/completions", json={
        "model": SMOL, "prompt": "hi", "logprobs": 1, "stream": stream})
    assert resp.status_code == 200, resp.text
    if stream:
        parts = [c["choices"][0]["logprobs"] for c in sse_events(resp.text)[:-1]
                 if c["choices"] and c["choices"][0]["logprobs"]]
        merged = {k: [x for p in parts for x in p[k]] for k in parts[0]}
    else:
        merged = resp.json()["choices"][0]["logprobs"]
    assert merged["tokens"] == REPLY
    assert merged["token_logprobs"] == [-0.5] * len(REPLY)
    assert merged["top_logprobs"][0] == {"alt0": -1.0}
    offsets = [0]
    for token in REPLY[:-1]:
        offsets.append(offsets[-1] + len(token))
    assert merged["text_offset"] == offsets


async def test_completion_echo_with_logprobs_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/completions", json={
        "model": SMOL, "prompt": "hi", "logprobs": 1, "echo": True})
    assert resp.status_code == 400
    assert resp.json()["error"]["param"] == "echo"

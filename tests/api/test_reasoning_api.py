"""Reasoning split when the prompt already opened <think>, and the option to drop it."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.sse_util import sse_events

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"


def body(content: str, **extra: Any) -> dict[str, Any]:
    return {"model": SMOL, "messages": [{"role": "user", "content": content}], **extra}


async def stream_parts(client: httpx.AsyncClient, **extra: Any) -> tuple[str, str]:
    resp = await client.post("/v1/chat/completions", json=body("OPENTHINK", stream=True, **extra))
    deltas = [e["choices"][0]["delta"] for e in sse_events(resp.text)[:-1] if e["choices"]]
    return ("".join(d.get("reasoning_content", "") for d in deltas),
            "".join(d.get("content") or "" for d in deltas))


async def test_prompt_opened_thinking_is_split(client: httpx.AsyncClient) -> None:
    message = (await client.post("/v1/chat/completions", json=body("OPENTHINK"))).json()[
        "choices"][0]["message"]
    assert message["reasoning_content"] == message["reasoning"] == "weigh it"
    assert message["content"] == "Done."
    reasoning, content = await stream_parts(client)
    assert reasoning.strip() == "weigh it"
    assert content == "Done."


async def test_include_reasoning_false_drops_it(client: httpx.AsyncClient) -> None:
    message = (await client.post("/v1/chat/completions",
                                 json=body("OPENTHINK", include_reasoning=False))).json()[
        "choices"][0]["message"]
    assert "reasoning_content" not in message
    assert "reasoning" not in message
    assert message["content"] == "Done."
    reasoning, content = await stream_parts(client, include_reasoning=False)
    assert reasoning == ""
    assert content == "Done."


async def test_streamed_and_whole_reasoning_are_equal(client: httpx.AsyncClient) -> None:
    """Issue 13: `<think>\\nhmm, 2+2 \\n</think>` gave 'hmm, 2+2' whole, 'hmm, 2+2 \\n' streamed."""
    message = (await client.post("/v1/chat/completions", json=body("SPACETHINK"))).json()[
        "choices"][0]["message"]
    resp = await client.post("/v1/chat/completions", json=body("SPACETHINK", stream=True))
    deltas = [e["choices"][0]["delta"] for e in sse_events(resp.text)[:-1] if e["choices"]]
    streamed = "".join(d.get("reasoning_content", "") for d in deltas)
    assert message["reasoning_content"] == streamed == "hmm, 2+2"
    assert message["content"] == "".join(d.get("content") or "" for d in deltas) == "It is 4."

"""Issue 3 acceptance: the real openai SDK (sync and async) against a real `halo serve`."""

from __future__ import annotations

import asyncio

import openai
import pytest
from openai.types.chat import ChatCompletionMessageParam

from tests.e2e.server import Server

SMOL = "smollm2"
ASK: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Write one sentence about the sea."}]


def sync_client(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def async_client(server: Server) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


def test_chat_non_streaming(server: Server) -> None:
    resp = sync_client(server).chat.completions.create(model=SMOL, messages=ASK, max_tokens=24,
                                                       temperature=0)
    choice = resp.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in {"stop", "length"}
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 5
    assert 0 < resp.usage.completion_tokens <= 24


def test_chat_streaming_with_usage(server: Server) -> None:
    stream = sync_client(server).chat.completions.create(
        model=SMOL, messages=ASK, max_tokens=24, temperature=0, stream=True,
        stream_options={"include_usage": True})
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] in {"stop", "length"}
    assert all(f is None for f in finishes[:-1])
    usage = chunks[-1].usage
    assert usage is not None
    assert not chunks[-1].choices
    assert usage.completion_tokens > 0
    # same prompt, same greedy decoding, not streamed: same text
    again = sync_client(server).chat.completions.create(model=SMOL, messages=ASK, max_tokens=24,
                                                        temperature=0)
    assert again.choices[0].message.content == text


def test_completions_endpoint(server: Server) -> None:
    client = sync_client(server)
    resp = client.completions.create(model="gemma3-270m", prompt="The capital of France is",
                                     max_tokens=8, temperature=0)
    assert resp.choices[0].finish_reason in {"stop", "length"}
    assert resp.usage is not None
    assert resp.usage.completion_tokens > 0
    streamed = client.completions.create(model="gemma3-270m", prompt="The capital of France is",
                                         max_tokens=8, temperature=0, stream=True)
    text = "".join(c.choices[0].text for c in streamed if c.choices)
    assert text == resp.choices[0].text


def test_max_tokens_gives_length(server: Server) -> None:
    resp = sync_client(server).chat.completions.create(
        model=SMOL, messages=[{"role": "user", "content": "Count from 1 to 100."}],
        max_tokens=5, temperature=0)
    assert resp.choices[0].finish_reason == "length"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 5


def test_stop_string_never_in_output(server: Server) -> None:
    client = sync_client(server)
    prompt: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Count from 1 to 20, separated by commas."}]
    free = client.chat.completions.create(model=SMOL, messages=prompt, max_tokens=60,
                                          temperature=0).choices[0].message.content or ""
    assert "5" in free, free
    stopped = client.chat.completions.create(model=SMOL, messages=prompt, max_tokens=60,
                                             temperature=0, stop=["5"])
    content = stopped.choices[0].message.content or ""
    assert stopped.choices[0].finish_reason == "stop"
    assert "5" not in content
    assert free.startswith(content)
    streamed = client.chat.completions.create(model=SMOL, messages=prompt, max_tokens=60,
                                              temperature=0, stop=["5"], stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in streamed if c.choices) == content


def test_seed_reproducible_at_temperature(server: Server) -> None:
    client = sync_client(server)

    def run(seed: int) -> str:
        resp = client.chat.completions.create(model=SMOL, messages=ASK, max_tokens=24,
                                              temperature=0.9, seed=seed)
        return resp.choices[0].message.content or ""

    first = run(1234)
    assert run(1234) == first
    assert any(run(seed) != first for seed in (1, 2, 3))


def test_n_two(server: Server) -> None:
    resp = sync_client(server).chat.completions.create(model=SMOL, messages=ASK, max_tokens=16,
                                                       temperature=1.0, seed=7, n=2)
    assert [c.index for c in resp.choices] == [0, 1]
    assert all(c.message.content for c in resp.choices)
    assert resp.choices[0].message.content != resp.choices[1].message.content


def test_multibyte_utf8_streamed_intact(server: Server) -> None:
    client = sync_client(server)
    messages: list[ChatCompletionMessageParam] = [
        {"role": "user", "content": "Repeat exactly: 日本語のテキスト 🌊🐟 café"}]
    plain = client.chat.completions.create(model=SMOL, messages=messages, max_tokens=40,
                                           temperature=0).choices[0].message.content or ""
    pieces = [c.choices[0].delta.content or "" for c in client.chat.completions.create(
        model=SMOL, messages=messages, max_tokens=40, temperature=0, stream=True) if c.choices]
    assert "".join(pieces) == plain
    assert any(ord(ch) > 127 for ch in plain), plain
    assert "\ufffd" not in plain


def test_second_turn_reuses_cache(server: Server) -> None:
    client = sync_client(server)
    turn1: list[ChatCompletionMessageParam] = [
        {"role": "system", "content": "You are a helpful assistant. " * 20},
        {"role": "user", "content": "Say hello."}]
    first = client.chat.completions.create(model=SMOL, messages=turn1, max_tokens=12,
                                           temperature=0)
    assert first.usage is not None
    reply = first.choices[0].message.content or ""
    turn2: list[ChatCompletionMessageParam] = [
        *turn1, {"role": "assistant", "content": reply}, {"role": "user", "content": "Again."}]
    second = client.chat.completions.create(model=SMOL, messages=turn2, max_tokens=12,
                                            temperature=0)
    assert second.usage is not None
    assert second.usage.prompt_tokens_details is not None
    assert second.usage.prompt_tokens_details.cached_tokens is not None
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens


@pytest.mark.anyio
async def test_eight_concurrent_streams_async(server: Server) -> None:
    client = async_client(server)

    async def one(i: int) -> tuple[str | None, int]:
        stream = await client.chat.completions.create(
            model=SMOL, messages=[{"role": "user", "content": f"Tell me fact number {i}."}],
            max_tokens=32, temperature=0.7, seed=i, stream=True)
        finish, pieces = None, 0
        async for chunk in stream:
            if chunk.choices:
                pieces += bool(chunk.choices[0].delta.content)
                finish = chunk.choices[0].finish_reason or finish
        return finish, pieces

    results = await asyncio.gather(*(one(i) for i in range(8)))
    assert all(finish in {"stop", "length"} for finish, _ in results), results
    assert all(pieces > 0 for _, pieces in results)
    await client.close()

"""The worker on SmolLM2-135M-Instruct (has a chat template), driven through EngineClient."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from app.engine.client import EngineClient, GenerateRequest, TextDelta
from tests.engine.conftest import N_CTX, chat, run, smol_spec

pytestmark = pytest.mark.anyio

COUNT = "Count from 1 to 10, separated by commas."


async def test_load_report(smol: EngineClient) -> None:
    r = smol.report
    assert r.pid == smol.pid
    assert smol.alive
    assert (r.n_ctx, r.parallel, r.n_ctx_train, r.n_vocab) == (N_CTX, 4, 8192, 49152)
    assert 80_000_000 < r.model_bytes < 120_000_000
    # f16 K and V: 30 layers x (1024 x 4) cells x 192 (n_embd_k_gqa) x 2 bytes, times 2
    assert r.kv_bytes == 30 * N_CTX * 4 * 192 * 2 * 2
    assert 0 < r.compute_bytes < 200 * 1024 * 1024
    assert r.rss_bytes > 50_000_000
    assert r.has_chat_template
    assert r.backend_devices == ("CPU",)
    assert 0 < r.load_seconds < 60


async def test_greedy_chat_answer(smol: EngineClient) -> None:
    res = await run(smol, chat("g1", COUNT, max_tokens=40, temperature=0))
    assert res.failed is None
    assert res.accepted is not None
    assert res.finished is not None
    assert res.text.startswith("1, 2, 3")
    assert res.reasons[0] in ("stop", "length")
    assert res.finished.prompt_tokens == res.accepted.prompt_tokens
    assert res.finished.completion_tokens == res.tokens[0] > 0
    assert res.finished.prompt_ms > 0
    assert res.finished.decode_ms > 0
    deltas = [e for e in res.events if isinstance(e, TextDelta)]
    assert sum(d.n_tokens for d in deltas) <= res.tokens[0]


async def test_max_tokens_gives_length(smol: EngineClient) -> None:
    res = await run(smol, chat("m1", COUNT, max_tokens=5, temperature=0))
    assert res.reasons == {0: "length"}
    assert res.tokens == {0: 5}


@pytest.mark.parametrize("stop", ["5", ", 6", "4, 5"])
async def test_stop_string_is_never_emitted(smol: EngineClient, stop: str) -> None:
    res = await run(smol, chat(f"s-{stop}", COUNT, max_tokens=40, temperature=0, stop=[stop]))
    assert res.reasons == {0: "stop"}
    assert stop not in res.text
    assert res.text.startswith("1, 2, 3")
    assert res.text.endswith(("4, ", "5", "3, "))


async def test_seed_reproducible_at_temperature(smol: EngineClient) -> None:
    def req(rid: str, seed: int) -> GenerateRequest:
        return chat(rid, "Tell me a story about a cat.", max_tokens=24, temperature=0.8, seed=seed)

    a = await run(smol, req("seed-a", 1234))
    b = await run(smol, req("seed-b", 1234))
    assert a.text
    assert a.text == b.text
    others = {(await run(smol, req(f"seed-{s}", s))).text for s in (1, 2, 3)}
    assert len(others | {a.text}) > 1


async def test_seed_reproducible_while_other_streams_run(smol: EngineClient) -> None:
    def req(rid: str) -> GenerateRequest:
        return chat(rid, "Tell me about dogs.", max_tokens=20, temperature=0.8, seed=42)

    alone = await run(smol, req("alone"))
    others = [
        chat(f"busy{i}", f"Write about {i}.", max_tokens=30, temperature=0.8) for i in range(3)
    ]
    together = await asyncio.gather(run(smol, req("together")), *(run(smol, o) for o in others))
    assert together[0].text == alone.text


async def test_n2_gives_two_independent_choices(smol: EngineClient) -> None:
    req = chat("n2", "Name a fruit.", max_tokens=12, temperature=1.0, seed=7, n=2)
    res = await run(smol, req)
    assert set(res.reasons) == {0, 1}
    assert set(res.texts) <= {0, 1}
    assert res.texts
    assert res.finished is not None
    assert res.finished.completion_tokens == res.tokens[0] + res.tokens[1]
    again = await run(
        smol, chat("n2b", "Name a fruit.", max_tokens=12, temperature=1.0, seed=7, n=2)
    )
    assert again.texts == res.texts


async def test_eight_concurrent_requests_all_finish(smol: EngineClient) -> None:
    reqs = [chat(f"c{i}", f"Say the number {i}.", max_tokens=16, temperature=0) for i in range(8)]
    results = await asyncio.gather(*(run(smol, r) for r in reqs))
    for res in results:
        assert res.failed is None
        assert res.reasons[0] in ("stop", "length")
        assert res.finished is not None
    assert max(r.finished.queue_ms for r in results if r.finished) > 0
    stats = await smol.stats()
    assert (stats.slots_busy, stats.requests_active, stats.requests_queued) == (0, 0, 0)


async def test_second_turn_reuses_the_kv_cache(smol: EngineClient) -> None:
    first = await run(smol, chat("t1", "Hi! What is your name?", max_tokens=16, temperature=0))
    assert first.accepted is not None
    messages = [
        {"role": "user", "content": "Hi! What is your name?"},
        {"role": "assistant", "content": first.text},
        {"role": "user", "content": "And what can you do?"},
    ]
    second = await run(smol, GenerateRequest("t2", messages=messages, max_tokens=8, temperature=0))
    assert second.accepted is not None
    assert second.finished is not None
    assert second.accepted.cached_tokens >= first.accepted.prompt_tokens
    assert second.finished.cached_tokens == second.accepted.cached_tokens
    same = await run(smol, GenerateRequest("t3", messages=messages, max_tokens=4, temperature=0))
    assert same.accepted is not None
    assert same.accepted.cached_tokens == same.accepted.prompt_tokens - 1


async def test_multibyte_utf8_arrives_whole(smol: EngineClient) -> None:
    res = await run(smol, GenerateRequest("u1", prompt="😀" * 8, max_tokens=12, temperature=0))
    assert "😀" in res.text
    assert "\ufffd" not in res.text
    deltas = [e for e in res.events if isinstance(e, TextDelta)]
    assert any(d.n_tokens > 1 for d in deltas)  # one emoji took several tokens


async def test_logit_bias_forces_a_token(smol: EngineClient) -> None:
    res = await run(
        smol, chat("lb", "Hello", max_tokens=5, temperature=0, logit_bias={1000: 100.0})
    )
    piece = res.text[: len(res.text) // 5]
    assert piece
    assert res.text == piece * 5


async def test_cancel_frees_the_slot_while_another_stream_continues(smol: EngineClient) -> None:
    long = smol.generate(
        chat("x-long", "Write a long essay.", max_tokens=400, temperature=0, ignore_eos=True)
    )
    other = asyncio.create_task(
        run(smol, chat("x-other", "Write a poem.", max_tokens=60, temperature=0, ignore_eos=True))
    )
    seen = 0
    async for event in long:
        seen += isinstance(event, TextDelta)
        if seen >= 3:
            break
    assert (await smol.stats()).slots_busy == 2
    await long.aclose()
    t0 = time.monotonic()
    while (await smol.stats()).slots_busy != 1:
        assert time.monotonic() - t0 < 1.0, "cancelled slot not freed within 1 s"
        await asyncio.sleep(0.02)
    res = await other
    assert res.reasons == {0: "length"}
    assert res.tokens == {0: 60}


async def test_prompt_too_long_fails_before_any_token(smol: EngineClient) -> None:
    res = await run(smol, GenerateRequest("long", prompt="hello " * 1500, max_tokens=4))
    assert len(res.events) == 1
    assert res.failed is not None
    assert res.failed.code == "context_length_exceeded"
    assert res.failed.details["n_ctx"] == N_CTX
    assert res.failed.details["prompt_tokens"] > N_CTX


async def test_generation_is_capped_at_the_context(smollm_path: Path) -> None:
    client = await EngineClient.start(smol_spec(smollm_path, n_ctx=128, parallel=1))
    try:
        for max_tokens in (None, 100):
            req = GenerateRequest(
                f"cap-{max_tokens}",
                prompt="hello " * 100,
                max_tokens=max_tokens,
                temperature=0,
                ignore_eos=True,
            )
            res = await run(client, req)
            assert res.accepted is not None
            assert res.reasons == {0: "length"}
            assert res.accepted.prompt_tokens + res.tokens[0] == 128
    finally:
        await client.stop()


async def test_invalid_n(smol: EngineClient) -> None:
    res = await run(smol, chat("bad-n", "hi", n=5))
    assert res.failed is not None
    assert res.failed.code == "invalid_n"
    assert len(res.events) == 1

"""The worker on gemma-3-270m: no GGUF chat template (override given), sliding-window model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.engine.client import EngineClient, GenerateRequest
from tests.engine.conftest import N_CTX, chat, gemma_spec, run

pytestmark = pytest.mark.anyio


@pytest.fixture
async def gemma_plain(gemma_path: Path) -> AsyncIterator[EngineClient]:
    client = await EngineClient.start(gemma_spec(gemma_path, parallel=1, chat_template=None))
    yield client
    await client.stop()


async def test_load_report(gemma: EngineClient) -> None:
    r = gemma.report
    assert (r.n_ctx, r.parallel, r.n_vocab) == (N_CTX, 2, 262144)
    assert r.n_ctx_train >= 32768
    assert 150_000_000 < r.model_bytes < 400_000_000
    assert r.kv_bytes > 0
    assert r.compute_bytes > 0
    assert r.rss_bytes > 0
    assert r.has_chat_template  # from the override


async def test_greedy_chat_with_override_template(gemma: EngineClient) -> None:
    res = await run(
        gemma, chat("g1", "What is the capital of France?", max_tokens=12, temperature=0)
    )
    assert res.failed is None
    assert res.text.strip()
    assert res.reasons[0] in ("stop", "length")


async def test_bos_is_not_doubled(gemma: EngineClient) -> None:
    rendered = "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"
    counts = []
    for rid, req in (
        ("b1", chat("b1", "Hi", max_tokens=1)),
        ("b2", GenerateRequest("b2", prompt=rendered, max_tokens=1)),
        ("b3", GenerateRequest("b3", prompt=rendered.removeprefix("<bos>"), max_tokens=1)),
    ):
        res = await run(gemma, req)
        assert res.accepted is not None, rid
        counts.append(res.accepted.prompt_tokens)
    assert counts[0] == counts[1] == counts[2]


async def test_completion_and_prefix_reuse_on_swa_model(gemma: EngineClient) -> None:
    prompt = "The quick brown fox jumps over the lazy dog. " * 8
    first = await run(gemma, GenerateRequest("p1", prompt=prompt, max_tokens=8, temperature=0))
    assert first.accepted is not None
    assert first.text
    second = await run(
        gemma, GenerateRequest("p2", prompt=prompt + "Again:", max_tokens=8, temperature=0)
    )
    assert second.accepted is not None
    # the trailing space merges with the next word, so the last prompt token may differ
    assert second.accepted.cached_tokens >= first.accepted.prompt_tokens - 1


async def test_n2_on_gemma(gemma: EngineClient) -> None:
    res = await run(
        gemma,
        GenerateRequest(
            "n2", prompt="Once upon a time", max_tokens=6, temperature=0.9, seed=3, n=2
        ),
    )
    assert set(res.reasons) == {0, 1}
    assert res.finished is not None
    assert res.finished.completion_tokens > 0


async def test_unicode_continuation(gemma: EngineClient) -> None:
    res = await run(
        gemma, GenerateRequest("zh", prompt="中国的首都是", max_tokens=12, temperature=0)
    )
    assert any(ord(c) > 0x2E80 for c in res.text)
    assert "\ufffd" not in res.text


async def test_no_template_and_no_override_is_an_error(gemma_plain: EngineClient) -> None:
    assert not gemma_plain.report.has_chat_template
    res = await run(gemma_plain, chat("nt", "Hi", max_tokens=4))
    assert res.failed is not None
    assert res.failed.code == "no_chat_template"
    assert len(res.events) == 1
    ok = await run(gemma_plain, GenerateRequest("raw", prompt="Hello", max_tokens=3))
    assert ok.failed is None
    assert ok.reasons == {0: "length"}

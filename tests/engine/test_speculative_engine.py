"""Speculative decoding in the worker, on both test models: greedy output is exactly the
non-speculative output, with n-gram lookup and with a draft
model (the target as its own draft: same vocabulary by construction), with stop strings,
a grammar and n > 1. Speculating and plain requests run concurrently, so they share
llama_decode calls.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from app.engine.client import EngineClient, GenerateRequest, Speculation
from tests.engine.conftest import Result, chat, gemma_spec, run, smol_spec

pytestmark = pytest.mark.anyio

EDIT = (
    "Rewrite this function with the variable total renamed to acc. Reply with the code only.\n"
    "def add_all(items):\n"
    "    total = 0\n"
    "    for item in items:\n"
    "        total = total + item\n"
    "    return total\n"
)
MODES = {
    "off": Speculation("off", 8),
    # "always": draft whatever a wider step costs on this machine, so verification is exercised
    "ngram": Speculation("ngram", 8, "always"),
    "draft": Speculation("draft", 4, "always"),
}


# new tokens per request: gemma's 262k-token output layer makes each verified token dear on
# a CPU, so its requests are shorter
TOKENS = {"smollm2": 40, "gemma3": 20}


@pytest.fixture(scope="module", params=["smollm2", "gemma3"])
async def spec_engine(
    request: pytest.FixtureRequest, smollm_path: Path, gemma_path: Path, anyio_backend: str
) -> AsyncIterator[EngineClient]:
    if request.param == "smollm2":
        spec = smol_spec(smollm_path, parallel=6, draft_path=smollm_path)
    else:
        spec = gemma_spec(gemma_path, parallel=6, draft_path=gemma_path, n_ctx=512)
    client = await EngineClient.start(spec)
    yield client
    await client.stop()


async def run_modes(client: EngineClient, tag: str, **kw: Any) -> dict[str, Result]:
    """The same request once per mode, all at the same time."""

    def req(mode: str) -> GenerateRequest:
        return chat(f"{tag}-{mode}", EDIT, speculative=MODES[mode], **kw)

    results = await asyncio.gather(*(run(client, req(mode)) for mode in MODES))
    return dict(zip(MODES, results, strict=True))


def assert_same(results: dict[str, Result]) -> None:
    base = results["off"]
    assert base.failed is None
    assert base.texts, "the reference produced text"
    for mode, res in results.items():
        assert res.failed is None, (mode, res.failed)
        assert res.texts == base.texts, mode
        assert res.reasons == base.reasons, mode
        assert res.tokens == base.tokens, mode
    assert base.finished is not None
    assert base.finished.spec_proposed == 0


def tokens(client: EngineClient) -> int:
    return TOKENS[client.spec.model_id]


async def test_greedy_output_is_identical_and_drafts_are_accepted(
    spec_engine: EngineClient,
) -> None:
    results = await run_modes(spec_engine, "greedy", max_tokens=tokens(spec_engine),
                              temperature=0)
    assert_same(results)
    for mode in ("ngram", "draft"):
        finished = results[mode].finished
        assert finished is not None
        assert finished.spec_proposed > 0, mode
        assert 0 < finished.spec_accepted <= finished.spec_proposed, mode
    draft = results["draft"].finished
    assert draft is not None
    # the target as its own greedy draft: its drafts are (nearly always: a batch of one
    # token and one of several may round differently, see README) what the target samples
    assert draft.spec_accepted >= 0.8 * draft.spec_proposed


async def test_stop_string_inside_an_accepted_run(spec_engine: EngineClient) -> None:
    results = await run_modes(spec_engine, "stop", max_tokens=tokens(spec_engine),
                              temperature=0, stop=["items", "function"])
    assert_same(results)
    assert results["off"].reasons == {0: "stop"}


async def test_grammar_constrained_output_is_identical(spec_engine: EngineClient) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string"}},
              "required": ["code"]}
    results = await run_modes(spec_engine, "json", max_tokens=tokens(spec_engine),
                              temperature=0, json_schema=schema)
    assert_same(results)
    assert results["off"].text.startswith("{")


async def test_n2_and_seeded_sampling_are_identical(spec_engine: EngineClient) -> None:
    n = tokens(spec_engine) // 2
    results = await run_modes(spec_engine, "n2", max_tokens=n, temperature=0, n=2)
    assert_same(results)
    assert results["off"].texts[0] == results["off"].texts[1]
    # Seeded sampling with the full chain runs in every mode. Its text is not compared: the
    # chain draws once per emitted token in every mode, but the logits of a position decoded
    # in a batch of several tokens may differ from a one-token batch in the last bits, which
    # moves a sampled (not a greedy) choice now and then (seen once on gemma's 262k-token
    # vocabulary). That the accepted tokens follow the target's distribution is the
    # statistical test in tests/unit/test_speculative.py.
    sampled = await run_modes(spec_engine, "seed", max_tokens=n, temperature=0.7, seed=7,
                              repeat_penalty=1.1, logit_bias={100: 2.0})
    for mode, res in sampled.items():
        assert res.failed is None, mode
        assert res.tokens[0] > 0, mode


# SmolLM2 only: Gemma 3 270M is a base model, its greedy continuation of a chat prompt is a
# run of near ties, so a second run from the prompt cache soon leaves the first answer
@pytest.mark.parametrize("spec_engine", ["smollm2"], indirect=True)
async def test_a_repeated_request_drafts_from_the_earlier_answer(
    spec_engine: EngineClient,
) -> None:
    """A worker keeps what its requests generated: the same request again (greedy: the
    same answer) finds its continuation there, which its own prompt does not hold."""
    prompt = "Tell me a short story about a lighthouse keeper and a storm."
    ngram = MODES["ngram"]
    first = await run(spec_engine, chat("again-1", prompt, speculative=ngram,
                                        max_tokens=tokens(spec_engine), temperature=0))
    second = await run(spec_engine, chat("again-2", prompt, speculative=ngram,
                                         max_tokens=tokens(spec_engine), temperature=0))
    assert first.failed is None
    assert second.failed is None
    # (the texts are not compared: the second run's first token comes from the prompt cache,
    # which may round differently, see README; the drafts are checked by verification)
    assert first.finished is not None
    assert second.finished is not None
    n = second.finished.completion_tokens
    counts = (first.finished.spec_accepted, second.finished.spec_accepted, n)
    assert second.finished.spec_accepted > first.finished.spec_accepted, counts
    assert second.finished.spec_accepted >= 0.6 * n, counts

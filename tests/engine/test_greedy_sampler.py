"""Plain greedy sampling in numpy picks exactly what llama.cpp's native greedy chain picks, on
real logits of SmolLM2 (every position of a prompt), with and without logit bias."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.engine.batch import Batch
from app.engine.model import LlamaModel
from app.engine.sampling import Sampler
from app.engine.schema import GenerateRequest, Speculation, WorkerSpec
from tests.engine.conftest import in_process, smol_spec

TEXT = ("The lighthouse keeper climbed the stairs every evening, counting the steps, and "
        "wrote the weather in a small book: wind from the west, rain at night, 1 2 3 4 5.")


@pytest.fixture(scope="module")
def decoded(smollm_path: Path) -> Iterator[tuple[LlamaModel, int]]:
    """The model with every position of TEXT decoded as an output (indices 0..n-1)."""
    spec: WorkerSpec = smol_spec(smollm_path, parallel=1, speculative=Speculation("ngram", 64))
    with in_process(spec) as llama:
        tokens = llama.tokenize(TEXT, add_special=True)[:64]
        batch = Batch(len(tokens))
        try:
            batch.add_run_all(tokens, 0)
            assert batch.decode(llama.ctx) == 0
        finally:
            batch.free()
        yield llama, len(tokens)


def _pick(llama: LlamaModel, req: GenerateRequest, idx: int, *, native: bool) -> int:
    sampler = Sampler(req, n_vocab=llama.n_vocab, penalty_last_n=64, seed=0,
                      eog_tokens=llama.eog_tokens, vocab=llama.vocab, native=native)
    try:
        return sampler.sample(llama.ctx, idx)
    finally:
        sampler.free()


def _req(**kw: Any) -> GenerateRequest:
    return GenerateRequest(request_id="g", messages=[], temperature=0, **kw)


def test_greedy_fast_path_is_taken_only_where_it_is_exact(
    decoded: tuple[LlamaModel, int],
) -> None:
    llama, _ = decoded

    def fast(req: GenerateRequest, grammar: str | None = None) -> bool:
        sampler = Sampler(req, n_vocab=llama.n_vocab, penalty_last_n=64, seed=0,
                          eog_tokens=llama.eog_tokens, vocab=llama.vocab, grammar=grammar)
        try:
            return sampler._chain is None
        finally:
            sampler.free()

    assert fast(_req())
    assert fast(_req(ignore_eos=True, logit_bias={5: 2.0}))
    assert not fast(_req(repeat_penalty=1.1))
    assert not fast(_req(presence_penalty=0.5))
    assert not fast(_req(), grammar='root ::= "a"')
    assert not fast(GenerateRequest(request_id="g", messages=[], temperature=0.7))


def test_fast_greedy_equals_native_greedy(decoded: tuple[LlamaModel, int]) -> None:
    llama, n = decoded
    assert n >= 40
    changed = 0
    for idx in range(n):
        plain = _pick(llama, _req(), idx, native=True)
        a, b = (plain + 11) % llama.n_vocab, (plain + 5) % llama.n_vocab
        cases = [
            _req(),
            _req(ignore_eos=True),
            _req(logit_bias={plain: -100.0}),  # the runner-up wins
            _req(logit_bias={(plain + 7) % llama.n_vocab: 30.0, plain: -0.5}),
            _req(logit_bias=dict.fromkeys(range(0, llama.n_vocab, 3), -math.inf)),
            # two tokens pushed to the same value: the lower id wins, in both
            _req(logit_bias={a: 1e30, b: 1e30}),
        ]
        for req in cases:
            native = _pick(llama, req, idx, native=True)
            assert _pick(llama, req, idx, native=False) == native, (idx, req.logit_bias)
            changed += native != plain
    assert changed >= 2 * n  # the biases did move the choice (the runner-up, the ties)

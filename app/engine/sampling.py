"""Per-choice sampler chains built from llama.cpp's native samplers (no Python over the vocab)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import llama_cpp.llama_cpp as lc
import numpy as np

from app.engine.grammar import GrammarError, schema_to_gbnf
from app.engine.logprobs import logits_row
from app.engine.schema import GenerateRequest

RANDOM_SEED = 0xFFFFFFFF  # LLAMA_DEFAULT_SEED: llama.cpp picks a random seed


def choice_seed(seed: int | None, index: int) -> int:
    """Seed of choice `index`: seed + index (32 bits); random when no seed is given."""
    if seed is None:
        return RANDOM_SEED
    value = (seed + index) & 0xFFFFFFFF
    return value if value != RANDOM_SEED else 0


def grammar_sampler(vocab: Any, grammar: str) -> Any:
    """A native grammar sampler (root rule `root`); GrammarError if llama.cpp refuses it."""
    sampler = lc.llama_sampler_init_grammar(vocab, grammar.encode(), b"root")
    if not sampler:
        raise GrammarError("the grammar derived from the JSON schema does not parse")
    return sampler


def compile_schema(vocab: Any, schema: dict[str, Any]) -> str:
    """GBNF for `schema` that llama.cpp accepts, or GrammarError."""
    grammar = schema_to_gbnf(schema)
    lc.llama_sampler_free(grammar_sampler(vocab, grammar))
    return grammar


class Sampler:
    """One sampler chain: [grammar,] logit bias, penalties, then greedy or
    top-k/top-p/min-p/temp/dist. The grammar comes first so every later sampler only
    sees tokens the grammar allows.

    Penalties see only generated tokens (llama_sampler_sample accepts each sampled token).

    Plain greedy decoding (no grammar, no penalties) takes the first highest logit after the
    logit bias with numpy, as llama.cpp's greedy sampler does: the native chain copies the
    whole vocabulary into a candidate array for every token (about 0.2 ms per token with a
    49k vocabulary on the 2-core test machine, 3% of an 8-stream step; numpy about 0.03 ms).
    `native=True` keeps the native chain (tests compare the two).
    """

    def __init__(
        self,
        req: GenerateRequest,
        *,
        n_vocab: int,
        penalty_last_n: int,
        seed: int,
        eog_tokens: Iterable[int],
        vocab: Any = None,
        grammar: str | None = None,
        native: bool = False,
    ) -> None:
        self._chain: Any = None
        self._n_vocab = n_vocab
        bias = {int(t): float(b) for t, b in req.logit_bias.items() if 0 <= int(t) < n_vocab}
        if req.ignore_eos and grammar is None:  # a finished grammar allows only EOG
            bias.update(dict.fromkeys(eog_tokens, -math.inf))
        penalties = req.repeat_penalty != 1.0 or req.frequency_penalty or req.presence_penalty
        self._greedy = (not native and grammar is None and not penalties
                        and req.temperature <= 0.0)
        self._bias_ids = np.fromiter(bias, dtype=np.intp, count=len(bias))
        self._bias_values = np.fromiter(bias.values(), dtype=np.float32, count=len(bias))
        if self._greedy:
            return
        chain: Any = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        self._chain = chain
        if grammar is not None:
            try:
                self._add(grammar_sampler(vocab, grammar))
            except GrammarError:
                self.free()
                raise
        if bias:
            arr = (lc.llama_logit_bias * len(bias))(
                *(lc.llama_logit_bias(token=t, bias=b) for t, b in bias.items())
            )
            self._add(lc.llama_sampler_init_logit_bias(n_vocab, len(bias), arr))
        if penalties:
            self._add(
                lc.llama_sampler_init_penalties(
                    n_vocab,
                    penalty_last_n,
                    req.repeat_penalty,
                    req.frequency_penalty,
                    req.presence_penalty,
                )
            )
        if req.temperature <= 0.0:
            self._add(lc.llama_sampler_init_greedy())
            return
        if req.top_k > 0:
            self._add(lc.llama_sampler_init_top_k(min(req.top_k, n_vocab)))
        if req.top_p < 1.0:
            self._add(lc.llama_sampler_init_top_p(req.top_p, 1))
        if req.min_p > 0.0:
            self._add(lc.llama_sampler_init_min_p(req.min_p, 1))
        self._add(lc.llama_sampler_init_temp(req.temperature))
        self._add(lc.llama_sampler_init_dist(seed))

    def _add(self, sampler: Any) -> None:
        lc.llama_sampler_chain_add(self._chain, sampler)

    def sample(self, ctx: Any, idx: int) -> int:
        """Sample (and accept) a token from output `idx` of the last decode."""
        if self._greedy:
            logits = logits_row(ctx, idx, self._n_vocab)
            if self._bias_ids.size:
                logits = logits.copy()
                logits[self._bias_ids] += self._bias_values
            return int(logits.argmax())  # the first of equal maxima, as llama.cpp's greedy
        return int(lc.llama_sampler_sample(self._chain, ctx, idx))

    def free(self) -> None:
        if self._chain is not None:
            lc.llama_sampler_free(self._chain)
            self._chain = None

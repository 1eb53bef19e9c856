"""Per-choice sampler chains built from llama.cpp's native samplers (no Python over the vocab)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import llama_cpp.llama_cpp as lc

from app.engine.grammar import GrammarError, schema_to_gbnf
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
    ) -> None:
        chain: Any = lc.llama_sampler_chain_init(lc.llama_sampler_chain_default_params())
        self._chain = chain
        if grammar is not None:
            try:
                self._add(grammar_sampler(vocab, grammar))
            except GrammarError:
                self.free()
                raise
        bias = {int(t): float(b) for t, b in req.logit_bias.items() if 0 <= int(t) < n_vocab}
        if req.ignore_eos and grammar is None:  # a finished grammar allows only EOG
            bias.update(dict.fromkeys(eog_tokens, -math.inf))
        if bias:
            arr = (lc.llama_logit_bias * len(bias))(
                *(lc.llama_logit_bias(token=t, bias=b) for t, b in bias.items())
            )
            self._add(lc.llama_sampler_init_logit_bias(n_vocab, len(bias), arr))
        if req.repeat_penalty != 1.0 or req.frequency_penalty or req.presence_penalty:
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
        return int(lc.llama_sampler_sample(self._chain, ctx, idx))

    def free(self) -> None:
        if self._chain is not None:
            lc.llama_sampler_free(self._chain)
            self._chain = None

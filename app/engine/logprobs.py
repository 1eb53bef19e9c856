"""Log-probabilities of a sampled token from the raw logits (vectorised, worker side)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import llama_cpp.llama_cpp as lc
import numpy as np

from app.engine.schema import TokenLogprob


def logits_row(ctx: Any, idx: int, n_vocab: int) -> np.ndarray[Any, np.dtype[np.float32]]:
    """The logits of output `idx` of the last decode, a view of llama.cpp's buffer (no copy)."""
    return np.ctypeslib.as_array(lc.llama_get_logits_ith(ctx, idx), shape=(n_vocab,))


def token_logprob(
    ctx: Any, idx: int, n_vocab: int, token: int, top_n: int, piece: Callable[[int], bytes]
) -> TokenLogprob:
    """Log-softmax of output `idx` of the last decode at `token`, plus the `top_n` best."""
    logits = logits_row(ctx, idx, n_vocab)
    peak = float(logits.max())
    lse = peak + float(np.log(np.exp(logits - peak, dtype=np.float64).sum()))
    top: tuple[tuple[bytes, float], ...] = ()
    if top_n > 0:
        k = min(top_n, n_vocab)
        best = np.argpartition(logits, n_vocab - k)[n_vocab - k:]
        best = best[np.argsort(-logits[best], kind="stable")]
        top = tuple((piece(int(t)), float(logits[t]) - lse) for t in best)
    return TokenLogprob(piece(token), float(logits[token]) - lse, top)

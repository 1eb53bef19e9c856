"""Draft model of a worker: a small model with the target's vocabulary that proposes
the next tokens of each speculating sequence by greedy decoding in its own context.

The draft context has a sequence per target slot (same ids). Before proposing, each
sequence's draft cache is brought to the target's history (the longest common prefix is
kept, the rest decoded); then up to k greedy steps run for all proposing sequences at
once, one llama_decode per step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import llama_cpp.llama_cpp as lc

from app.engine.batch import Batch
from app.engine.model import LlamaModel, ModelLoadError
from app.engine.slots import common_prefix

_VOCAB_MAX_DIFF = 128  # like llama.cpp's speculative check: trailing added tokens may differ
_FIRST_CHECKED = 5  # ids below this (bos/eos/pad/unk) may be named differently


def check_vocab(target: LlamaModel, draft: LlamaModel) -> None:
    """ModelLoadError unless the draft's tokens are the target's (same ids, same text)."""
    tv, dv = target.vocab, draft.vocab
    if int(lc.llama_vocab_type(tv)) != int(lc.llama_vocab_type(dv)):
        raise ModelLoadError("draft model: its tokenizer type differs from the target's")
    if abs(target.n_vocab - draft.n_vocab) > _VOCAB_MAX_DIFF:
        raise ModelLoadError(
            f"draft model: vocabulary of {draft.n_vocab} tokens, the target has {target.n_vocab}"
        )
    for name in ("llama_vocab_bos", "llama_vocab_eos"):
        fn = getattr(lc, name)
        if int(fn(tv)) != int(fn(dv)):
            raise ModelLoadError(f"draft model: {name.split('_')[-1]} token differs from the "
                                 "target's")
    for token in range(_FIRST_CHECKED, min(target.n_vocab, draft.n_vocab)):
        if lc.llama_vocab_get_text(tv, token) != lc.llama_vocab_get_text(dv, token):
            raise ModelLoadError(f"draft model: token {token} differs from the target's")


@dataclass
class Want:
    """A sequence that wants up to `k` draft tokens after `history` (its full context)."""

    seq: int
    history: Sequence[int]
    k: int


class Drafter:
    """The draft model's context and a greedy sampler; `propose` fills the drafts."""

    def __init__(self, model: LlamaModel, parallel: int, n_batch: int, n_vocab_target: int) -> None:
        self.model = model
        self.batch = Batch(n_batch)
        self.tokens: list[list[int]] = [[] for _ in range(parallel)]  # KV content per seq
        self._greedy: Any = lc.llama_sampler_init_greedy()
        self._n_vocab = min(n_vocab_target, model.n_vocab)

    def propose(self, wants: Sequence[Want]) -> dict[int, list[int]]:
        """Greedy draft tokens per sequence (possibly fewer than asked, or none)."""
        out: dict[int, list[int]] = {w.seq: [] for w in wants}
        following = self._catch_up(wants)
        active = [w for w in wants if w.seq in following]
        batch = self.batch
        while active:
            batch.clear()
            idx: dict[int, int] = {}
            for w in active:
                token = following[w.seq]
                if token >= self._n_vocab:  # a token the target does not have
                    continue
                drafts = out[w.seq]
                drafts.append(token)
                if len(drafts) < w.k:
                    tokens = self.tokens[w.seq]
                    idx[w.seq] = batch.add(token, len(tokens), w.seq, True)
                    tokens.append(token)
            active = [w for w in active if w.seq in idx]
            if not active:
                break
            if batch.decode(self.model.ctx) != 0:
                self._forget([w.seq for w in active])
                break
            following = {w.seq: self._sample(idx[w.seq]) for w in active}
        return out

    def _sample(self, idx: int) -> int:
        return int(lc.llama_sampler_sample(self._greedy, self.model.ctx, idx))

    def _catch_up(self, wants: Sequence[Want]) -> dict[int, int]:
        """Decode what each draft sequence lacks of its history; its next token per seq."""
        model, batch = self.model, self.batch
        for w in wants:
            tokens = self.tokens[w.seq]
            keep = min(common_prefix(tokens, w.history), len(w.history) - 1)
            if keep < len(tokens) and not (keep > 0 and model.seq_rm(w.seq, keep)):
                model.seq_rm(w.seq, -1)
                keep = 0
            if (keep > 0 and model.n_swa > 0
                    and model.seq_pos_min(w.seq) > max(0, keep - model.n_swa)):
                model.seq_rm(w.seq, -1)
                keep = 0
            del tokens[keep:]
        following: dict[int, int] = {}
        ended: list[tuple[int, int]] = []  # (seq, batch index of its last token)

        def decode() -> bool:
            ok = batch.decode(model.ctx) == 0
            if ok:
                for seq, i in ended:
                    following[seq] = self._sample(i)
            ended.clear()
            batch.clear()
            return ok

        batch.clear()
        for w in wants:
            tokens = self.tokens[w.seq]
            pos, end = len(tokens), len(w.history)
            while pos < end:
                if batch.n == batch.capacity and not decode():
                    self._forget([x.seq for x in wants])
                    return {}
                take = min(batch.capacity - batch.n, end - pos)
                run = w.history[pos : pos + take]
                last = batch.add_run(run, pos, w.seq, pos + take == end)
                tokens.extend(run)
                pos += take
                if pos == end:
                    ended.append((w.seq, last))
        if batch.n and not decode():
            self._forget([x.seq for x in wants])
            return {}
        return following

    def _forget(self, seqs: Sequence[int]) -> None:
        for seq in seqs:
            self.model.seq_rm(seq, -1)
            self.tokens[seq].clear()

    def close(self) -> None:
        if self._greedy is not None:
            lc.llama_sampler_free(self._greedy)
            self._greedy = None
        self.batch.free()
        self.model.close()

"""Speculative decoding, the pure part: n-gram proposals, verification, draft length.

A proposal is a list of draft tokens that would follow a sequence's pending token. The
loop decodes the pending token and the drafts in one batch (one output each), then
`verify_drafts` samples the target at each position with the sequence's own sampler
chain and keeps drafts while they equal what the target sampled.

That is the standard accept/reject rule for a proposal that puts all its mass on one
token (both proposers here are deterministic: n-gram lookup and the draft model's
argmax): a draft `d` is kept with probability p(d) under the target distribution after
the sampler chain, and when it is not, the token emitted is a sample of p conditioned on
not being `d`, i.e. of the normalised residual max(0, p - q). So the output has the
target's distribution, and the chain consumes one random draw per emitted token exactly
as without speculation: greedy output is the same tokens (a seeded sampled request makes
the same draws, but logits computed in a batch of several tokens can differ from a
one-token batch in the last bits, which may move a sampled choice). `accept_reject` is the
general rule (any proposal distribution q), kept for the statistical test that checks both
against the target.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence

from app.engine.spec_policy import DepthAcceptance

_KEY = 3  # n-gram length looked up
_MAX_MATCH = 64  # longest match length worth measuring
_CANDIDATES = 16  # most recent occurrences of a key compared
_SHIFT = 20  # bits per token in a key (vocabularies up to 2**20 ids)
_RECENT = 16384  # generated tokens of recent requests kept for lookups (about 200 KB)


class NgramIndex:
    """Positions of every 3-gram of a token history, for prompt-lookup proposals.

    `lookup(k)` finds earlier occurrences of the history's last 3 tokens, keeps the one
    whose match extends furthest back (the most recent on ties) and returns up to `k`
    tokens that followed it and how far back the match reaches (at most `_MAX_MATCH`
    tokens); `match(query, k)` does the same for the end of another history (a sequence
    looking up what earlier requests produced).
    """

    def __init__(self, tokens: Sequence[int] = ()) -> None:
        self.tokens: list[int] = []
        self._ends: dict[int, list[int]] = {}
        self.extend(tokens)

    def extend(self, tokens: Sequence[int]) -> None:
        t = self.tokens
        start = len(t)
        t.extend(tokens)
        ends = self._ends
        for end in range(max(start, _KEY - 1), len(t)):
            key = _key(t, end)
            found = ends.get(key)
            if found is None:
                ends[key] = [end]
            else:
                found.append(end)

    def append(self, token: int) -> None:
        self.extend((token,))

    def lookup(self, k: int) -> tuple[list[int], int]:
        """Up to `k` proposed tokens and the length of the match they continue."""
        return self.match(self.tokens, k)

    def match(self, query: Sequence[int], k: int) -> tuple[list[int], int]:
        """Up to `k` tokens that followed the longest match of the end of `query` here (not
        counting the end of this history itself) and the length of that match."""
        t = self.tokens
        last = len(query) - 1
        if k <= 0 or last < _KEY:
            return [], 0
        ends = self._ends.get(_key(query, last))
        if ends is None:
            return [], 0
        best_len, best_end = 0, -1
        limit = len(t) - 1  # a match must have a continuation
        for end in reversed(ends[-_CANDIDATES - 1 :]):
            if end >= limit:
                continue
            n = _KEY
            while n < _MAX_MATCH and end - n >= 0 and n <= last and t[end - n] == query[last - n]:
                n += 1
            if n > best_len:
                best_len, best_end = n, end
        if best_end < 0:
            return [], 0
        return t[best_end + 1 : best_end + 1 + k], best_len


def _key(t: Sequence[int], end: int) -> int:
    return (((t[end - 2] << _SHIFT) | t[end - 1]) << _SHIFT) | t[end]


class RecentOutputs:
    """The generated tokens of a worker's latest requests (at most `size`), indexed: a
    request often produces what an earlier one did (a retry, another choice, the same file
    rewritten again), which its own prompt cannot propose."""

    def __init__(self, size: int = _RECENT) -> None:
        self.size = size
        self.index = NgramIndex()

    def add(self, tokens: Sequence[int]) -> None:
        if len(tokens) < _KEY + 2:
            return
        tokens = tokens[-self.size:]
        have = self.index.tokens
        if len(have) + len(tokens) > 2 * self.size:  # re-index the newest `size` tokens
            self.index = NgramIndex(have[len(have) - (self.size - len(tokens)):])
        self.index.extend(tokens)


def verify_drafts(
    drafts: Sequence[int],
    sample: Callable[[int], int],
    emit: Callable[[int, int], bool],
) -> int:
    """Verify `drafts` against the target; returns how many were accepted.

    `sample(i)` samples (and accepts into the chain) the target's token at position i,
    whose input is the pending token (i = 0) or draft i-1. `emit(i, token)` hands that
    token to the sequence and returns False once the sequence has ended. Tokens are
    emitted up to and including the first one that differs from its draft (or the one
    after the last draft), so each step emits accepted + 1 tokens unless the sequence ends.
    """
    for i in range(len(drafts) + 1):
        token = sample(i)
        if not emit(i, token) or i == len(drafts) or token != drafts[i]:
            return i
    return len(drafts)  # pragma: no cover - the loop always returns


def accept_reject(
    drafts: Sequence[int],
    q: Sequence[Sequence[float]],
    p: Callable[[int], Sequence[float]],
    rng: random.Random,
) -> list[int]:
    """The general rule (Leviathan et al. / Chen et al.) on explicit distributions.

    `q[i]` is the proposal distribution draft i was drawn from, `p(i)` the target's
    distribution at position i (given the drafts before it). Returns the emitted tokens:
    the accepted drafts plus one token from the residual or, if all were accepted, from
    p(len(drafts)).
    """
    out: list[int] = []
    for i, d in enumerate(drafts):
        pi = p(i)
        if rng.random() * q[i][d] < pi[d]:  # accept with probability min(1, p/q)
            out.append(d)
            continue
        residual = [max(0.0, a - b) for a, b in zip(pi, q[i], strict=True)]
        out.append(_draw(residual, rng))
        return out
    out.append(_draw(p(len(drafts)), rng))
    return out


def _draw(weights: Sequence[float], rng: random.Random) -> int:
    total = sum(weights)
    x = rng.random() * total
    for i, w in enumerate(weights):
        x -= w
        if x < 0.0:
            return i
    return max(i for i, w in enumerate(weights) if w > 0.0)


class DraftLength:
    """Per-sequence draft length from its recent acceptance, with back-off when it fails.

    All drafts accepted doubles the length (up to `k_max`); a partial acceptance halves it
    (or sets it to accepted + 1 if that is more). When the smoothed acceptance rate falls
    below `floor`, the sequence stops proposing for a while, twice as long each time it
    fails again.
    """

    def __init__(self, k_max: int, *, start: int = 4, floor: float = 0.35) -> None:
        self.k_max = k_max
        self.k = max(1, min(start, k_max))
        self.rate = 0.6
        self.floor = floor
        self._skip = 0
        self._cool = 2

    def want(self) -> int:
        """Draft tokens to propose this step (0 while backing off)."""
        if self.k_max <= 0:
            return 0
        if self._skip > 0:
            self._skip -= 1
            return 0
        return self.k

    def update(self, proposed: int, accepted: int) -> None:
        if proposed <= 0:
            return
        self.rate = 0.7 * self.rate + 0.3 * (accepted / proposed)
        if accepted == proposed:
            self.k = min(self.k_max, self.k * 2)
            self._cool = 2
        else:
            # halve, or just past what was accepted: copying text misses at an edit and
            # then matches long runs again, which a restart from 1 would climb back to slowly
            self.k = max(1, min(self.k_max, max(accepted + 1, self.k // 2)))
        if self.rate < self.floor:
            self._skip = self._cool
            self._cool = min(64, self._cool * 2)
            self.rate = self.floor  # give it a fair new start after the pause


class SpecState:
    """Speculation state of one choice: its proposer, draft length and counters.

    Acceptance per draft depth is counted per source of the drafts: the sequence's own
    history, or recent requests' outputs (`recalled`), each shrunk towards its worker's
    pooled rates of that source. A recalled answer to the same request is accepted whole,
    another story's phrase soon fails: one rate for both would have the budget draft the
    latter at 8 streams, where a draft must be nearly certain to pay."""

    __slots__ = ("kind", "always", "length", "depth", "recalled_depth", "recalled", "index",
                 "n_prompt", "drafts", "draft_idx", "proposed", "accepted")

    def __init__(self, kind: str, k_max: int, history: Sequence[int], *,
                 always: bool = False) -> None:
        self.kind = kind  # "ngram" | "draft"
        self.always = always  # draft whenever there is a proposal, whatever it costs
        self.length = DraftLength(k_max)
        self.depth = DepthAcceptance(k_max)
        self.recalled_depth = DepthAcceptance(k_max)
        self.recalled = False  # the current drafts come from recent requests' outputs
        self.index = NgramIndex(history) if kind == "ngram" else None
        self.n_prompt = len(history)
        self.drafts: list[int] = []  # proposed for the current step
        self.draft_idx = -1  # batch index of the first draft
        self.proposed = 0
        self.accepted = 0

    def ngram_proposal(self, room: int, recent: RecentOutputs | None = None) -> list[int]:
        """This step's n-gram drafts: as many as the draft length says (none while it
        backs off, at most `room`), continuing the longer match of the sequence's own
        history and of recent requests' outputs (its own on a tie)."""
        assert self.index is not None
        self.recalled = False
        k = min(self.length.want(), room)
        if k <= 0:
            return []
        proposal, match = self.index.lookup(k)
        if recent is not None and match < _MAX_MATCH:  # (no match there can be longer)
            other, longer = recent.index.match(self.index.tokens, k)
            if longer > match:
                proposal, self.recalled = other, True
        return proposal

    def acceptance(self) -> DepthAcceptance:
        """The per-depth acceptance of the current drafts' source."""
        return self.recalled_depth if self.recalled else self.depth

    def generated(self) -> list[int]:
        """The tokens this choice generated (n-gram speculation only)."""
        return [] if self.index is None else self.index.tokens[self.n_prompt:]

    def record(self, proposed: int, accepted: int,
               pooled: DepthAcceptance | None = None) -> None:
        """Count a verified draft (in `pooled` too: the worker's rates of the same source)."""
        if pooled is not None:
            pooled.record(proposed, accepted)
        self.proposed += proposed
        self.accepted += accepted
        self.length.update(proposed, accepted)
        self.acceptance().record(proposed, accepted)

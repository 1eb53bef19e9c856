"""When speculation pays: each step's draft tokens from the measured cost of a decode.

A draft token costs a place in the batch (and an output row); it pays only if the tokens
it is expected to add outweigh the longer step. How much longer depends on the machine:
on a GPU bound by memory bandwidth, 16 tokens cost about what 8 do; on a CPU a batch of 8
sequences is already compute-bound and every extra token costs nearly its share. So the
loop measures the wall time of its pure-decode steps per batch size (`StepCost`), and
`allocate` hands out draft tokens, most promising first, while the step's expected tokens
per second still grow. A batch size never measured is tried once (optimistic), so the
policy learns the machine's curve from its own traffic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

_SAMPLES = 5  # recent measurements kept per batch size; the estimate is their minimum
_STALE = 512  # a size not measured in this many steps is unknown again (tried afresh)
_PRIOR = 2.0  # weight, in drafts, of the prior acceptance of a depth never tried
_PRIOR_P = 0.6  # prior acceptance rate per draft token


class StepCost:
    """A decode step's wall time by the sequences decoding in it and its size in tokens,
    from the loop's own steps.

    Keyed by both because the same size costs differently: with one KV stream per sequence,
    llama.cpp splits a batch whose sequences bring different numbers of tokens into several
    micro-batches, so 8 sequences plus 1 draft cost much more than 9 sequences would.
    Other processes only ever make a step slower, so an estimate is the fastest of the
    recent measurements; a size not measured for a while is forgotten, so a slow moment (a
    first allocation, a busy neighbour) cannot stop drafting for good."""

    def __init__(self) -> None:
        self._seconds: dict[tuple[int, int], deque[float]] = {}
        self._seen: dict[tuple[int, int], int] = {}
        self._clock = 0

    def observe(self, streams: int, n_tokens: int, seconds: float) -> None:
        if streams <= 0 or n_tokens < streams or seconds <= 0.0:
            return
        self._clock += 1
        key = (streams, n_tokens)
        self._seconds.setdefault(key, deque(maxlen=_SAMPLES)).append(seconds)
        self._seen[key] = self._clock

    def _known(self, streams: int) -> dict[int, float]:
        fresh = self._clock - _STALE
        return {n: min(v) for (s, n), v in self._seconds.items()
                if s == streams and self._seen[(s, n)] > fresh}

    def estimate(self, streams: int, n_tokens: int) -> float | None:
        """Seconds for a step of `streams` sequences and `n_tokens` tokens: measured, or
        interpolated between the nearest measured sizes around it; below the smallest
        measured size, proportional to it (no cheaper per token: so the loop soon measures
        the smaller size itself); None when no size at or above it is known."""
        known = self._known(streams)
        exact = known.get(n_tokens)
        if exact is not None:
            return exact
        above = [n for n in known if n > n_tokens]
        if not above:
            return None
        hi = min(above)
        below = [n for n in known if n < n_tokens]
        if not below:
            return known[hi] * n_tokens / hi
        lo = max(below)
        return known[lo] + (known[hi] - known[lo]) * (n_tokens - lo) / (hi - lo)


class DepthAcceptance:
    """How often a sequence's i-th draft token is accepted once the ones before it were.

    Copying text accepts long runs whole (the rate stays high however deep), free text
    fails early: rates per depth tell the two apart where one overall rate cannot. A new
    sequence starts from its worker's pooled rates (`prior`); a depth never reached borrows
    the rate of the deepest one measured (a run that held so far tends to go on)."""

    _HALVE_AT = 4096  # pooled counts halve past this many first drafts: recent traffic rules

    def __init__(self, k_max: int) -> None:
        self.reached = [0.0] * k_max  # depth i verified after depths < i were accepted
        self.hits = [0.0] * k_max  # ... and accepted

    def record(self, proposed: int, accepted: int) -> None:
        for i in range(min(proposed, accepted + 1, len(self.reached))):
            self.reached[i] += 1
            if i < accepted:
                self.hits[i] += 1
        if self.reached and self.reached[0] > self._HALVE_AT:
            self.reached = [r / 2 for r in self.reached]
            self.hits = [h / 2 for h in self.hits]

    def rates(self, k: int, prior: DepthAcceptance | None = None) -> list[float]:
        """Acceptance rate of depth 1..k given the depths before it were accepted."""
        base = prior.rates(k) if prior is not None else [_PRIOR_P] * k
        out: list[float] = []
        rate = _PRIOR_P
        for i in range(min(k, len(self.reached))):
            if self.reached[i]:
                rate = (self.hits[i] + _PRIOR * base[i]) / (self.reached[i] + _PRIOR)
            elif prior is not None:
                rate = base[i]
            out.append(rate)
        return out

    def gains(self, k: int, prior: DepthAcceptance | None = None) -> tuple[float, ...]:
        """Expected accepted tokens from the 1st..k-th draft (non-increasing)."""
        out: list[float] = []
        gain = 1.0
        for rate in self.rates(k, prior):
            gain *= rate
            out.append(gain)
        return tuple(out)


@dataclass(frozen=True)
class Wanting:
    """A sequence that could take draft tokens; `gains[i]` is the expected accepted tokens
    from its (i+1)-th draft (non-increasing), so it can take up to len(gains)."""

    gains: tuple[float, ...]

    @property
    def k(self) -> int:
        return len(self.gains)


def allocate(base: int, outputs: int, wants: Sequence[Wanting], cost: StepCost,
             room: int) -> list[int]:
    """Draft tokens per entry of `wants` for a step of `base` batch tokens (of which
    `outputs` produce a token each), at most `room` in all.

    Drafts are taken best first while the step's expected tokens per second do not fall;
    one batch size beyond the measured range is taken on trust (so a step explores at most
    one unmeasured size and the curve is learnt one token at a time).
    """
    given = [0] * len(wants)
    if room <= 0 or not wants:
        return given
    candidates = sorted(
        ((gain, i) for i, w in enumerate(wants) for gain in w.gains if gain > 0.0),
        key=lambda c: -c[0],
    )
    expected = float(outputs)
    for drafts, (gain, i) in enumerate(candidates[:room]):
        now = cost.estimate(outputs, base + drafts)
        after = cost.estimate(outputs, base + drafts + 1)
        if after is None:
            if drafts > 0 and now is None:
                break  # explore one unmeasured size per step, not the whole room
        elif now is not None and (expected + gain) * now < expected * after:
            break
        given[i] += 1
        expected += gain
    return given

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

from collections.abc import Sequence
from dataclasses import dataclass

_ALPHA = 0.2  # weight of a new measurement in the running average


class StepCost:
    """Running average of a decode step's wall time per batch size (tokens)."""

    def __init__(self) -> None:
        self._seconds: dict[int, float] = {}

    def observe(self, n_tokens: int, seconds: float) -> None:
        if n_tokens <= 0 or seconds <= 0.0:
            return
        old = self._seconds.get(n_tokens)
        self._seconds[n_tokens] = seconds if old is None else old + _ALPHA * (seconds - old)

    def estimate(self, n_tokens: int) -> float | None:
        """Seconds for a batch of `n_tokens`: measured, or interpolated between the nearest
        measured sizes around it; None when no measured size is at or above it."""
        known = self._seconds
        exact = known.get(n_tokens)
        if exact is not None:
            return exact
        above = [n for n in known if n > n_tokens]
        if not above:
            return None
        hi = min(above)
        below = [n for n in known if n < n_tokens]
        if not below:
            return known[hi] * n_tokens / hi  # no cheaper than proportional below the smallest
        lo = max(below)
        return known[lo] + (known[hi] - known[lo]) * (n_tokens - lo) / (hi - lo)


@dataclass(frozen=True)
class Wanting:
    """A sequence that could take up to `k` draft tokens, each accepted with rate `p`."""

    k: int
    p: float


def allocate(base: int, outputs: int, wants: Sequence[Wanting], cost: StepCost,
             room: int) -> list[int]:
    """Draft tokens per entry of `wants` for a step of `base` batch tokens (of which
    `outputs` produce a token each), at most `room` in all.

    The i-th draft of a sequence adds an expected p**i tokens (it counts only if the ones
    before it were accepted). Drafts are taken best first while the step's expected tokens
    per second do not fall; a batch size with no measurement ahead of it is taken on trust.
    """
    given = [0] * len(wants)
    if room <= 0 or not wants:
        return given
    candidates = sorted(
        ((w.p ** depth, i) for i, w in enumerate(wants) for depth in range(1, w.k + 1)
         if w.p > 0.0),
        key=lambda c: -c[0],
    )
    expected = float(outputs)
    for drafts, (gain, i) in enumerate(candidates[:room]):
        now, after = cost.estimate(base + drafts), cost.estimate(base + drafts + 1)
        if now is not None and after is not None and (expected + gain) * now < expected * after:
            break
        given[i] += 1
        expected += gain
    return given

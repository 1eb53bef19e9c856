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
_TRUST = 3  # measurements of a size before its own figure is believed over its neighbours'
# a size not measured in this many steps is forgotten (tried afresh): long enough that
# other requests' plain steps do not wipe the curve between two speculating requests
_STALE = 4096
# a draft size believed not to pay is measured again after this many steps without it: its
# cost is the fastest recent measurement, so one step in a quiet moment corrects a belief
# formed while the machine was busy (else speculation could stay off until `_STALE`)
_RECHECK = 256
_PRIOR = 2.0  # weight, in drafts, of the prior acceptance of a depth never tried
_PRIOR_P = 0.6  # prior acceptance rate of a first draft token
_UNTRIED_P = 0.9  # of a deeper one that no draft has reached yet (optimism: it is tried)


class StepCost:
    """A decode step's wall time by the sequences decoding in it and its size in tokens,
    from the loop's own steps.

    Keyed by both because the same size costs differently: with one KV stream per sequence,
    llama.cpp splits a batch whose sequences bring different numbers of tokens into several
    micro-batches, so 8 sequences plus 1 draft cost much more than 9 sequences would.
    Other processes only ever make a step slower, so a size's cost is the fastest of its
    recent measurements, trusted once it has `_TRUST` of them. A size measured fewer times
    is no dearer than its measured neighbours suggest: one slow measurement (a graph being
    built, a busy neighbour) must not keep a size from being tried again, or the policy
    would stay with the small drafts it happened to measure well. A size not measured for a
    long while is forgotten.

    The plain step (one token per sequence) is measured nearly every step and so follows
    the machine; a drafting size is measured now and then, while the machine's load and
    the sequences' contexts change (a step over longer contexts costs more). So a drafting
    size's measurement is kept relative to the plain step's cost at that moment, and
    estimated at the plain step's cost now: its figure does not stay fast (or slow) while
    the plain step's moves."""

    def __init__(self) -> None:
        # (streams, tokens) -> recent (seconds, the plain step's cost then, or None)
        self._seconds: dict[tuple[int, int], deque[tuple[float, float | None]]] = {}
        self._seen: dict[tuple[int, int], int] = {}
        self._rechecked: dict[int, int] = {}  # sequence count -> clock of its last recheck
        self._clock = 0

    def observe(self, streams: int, n_tokens: int, seconds: float) -> None:
        if streams <= 0 or n_tokens < streams or seconds <= 0.0:
            return
        self._clock += 1
        key = (streams, n_tokens)
        base = None if n_tokens == streams else self._plain(streams)
        self._seconds.setdefault(key, deque(maxlen=_SAMPLES)).append((seconds, base))
        self._seen[key] = self._clock

    def _fresh(self, key: tuple[int, int]) -> bool:
        """Whether this (streams, tokens) size was measured within the last `_STALE` steps."""
        seen = self._seen.get(key)
        return seen is not None and seen > self._clock - _STALE

    def _plain(self, streams: int) -> float | None:
        """The fastest recent plain step of `streams` sequences, if measured lately."""
        key = (streams, streams)
        if not self._fresh(key):
            return None
        return min(v for v, _ in self._seconds[key])

    def take_recheck(self, streams: int, n_tokens: int) -> bool:
        """Whether a step of this size, believed not to pay from its own measurements, should
        be taken to measure it again: it has not been measured for `_RECHECK` steps, and no
        other recheck of this sequence count was taken in that time (so rechecks cost at most
        one step in `_RECHECK`). True marks the recheck as taken."""
        last = self._rechecked.get(streams)
        if last is not None and self._clock - last < _RECHECK:
            return False
        seen = self._seen.get((streams, n_tokens))
        if seen is None or self._clock - seen < _RECHECK:
            return False
        self._rechecked[streams] = self._clock
        return True

    def _known(self, streams: int) -> dict[int, tuple[float, bool]]:
        """Sizes measured lately -> (fastest recent seconds, trusted), a drafting size's
        measurements scaled by how the plain step's cost moved since each was taken."""
        now = self._plain(streams)
        return {n: (min(v * (now / base) if now and base else v for v, base in samples),
                    len(samples) >= _TRUST)
                for (s, n), samples in self._seconds.items()
                if s == streams and self._fresh((s, n))}

    def estimate(self, streams: int, n_tokens: int) -> float | None:
        """Seconds for a step of `streams` sequences and `n_tokens` tokens: a trusted
        measurement as it is; otherwise interpolated between the nearest measured sizes
        around it (a size measured too few times: no dearer than that); below the smallest
        measured size, proportional to it (no cheaper per token: so the loop soon measures
        the smaller size itself); None above the largest."""
        known = self._known(streams)
        own = known.get(n_tokens)
        if own is not None and own[1]:
            return own[0]
        above = [n for n in known if n > n_tokens]
        below = [n for n in known if n < n_tokens]
        if own is not None and not (above and below):
            return own[0]  # an end of the measured range: nothing to compare it with
        if not above:
            return None
        hi = min(above)
        if not below:
            return known[hi][0] * n_tokens / hi
        lo = max(below)
        c_lo, c_hi = known[lo][0], known[hi][0]
        guess = c_lo + (c_hi - c_lo) * (n_tokens - lo) / (hi - lo)
        return guess if own is None else min(own[0], guess)


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
        """Acceptance rate of depth 1..k given the depths before it were accepted.

        A depth this sequence reached: its counts, shrunk towards the prior's rate (or the
        rate of the depth before it). One it never reached: the prior's rate if the prior
        reached it; one nobody reached: optimistic (`_UNTRIED_P`, or the rate before it if
        higher). Deep drafts must not look bad only because they were never tried: copying
        text accepts long runs whole, which is only learnt by drafting deep; once tried,
        the counts decide."""
        base = prior.rates(k) if prior is not None else None
        out: list[float] = []
        rate = base[0] if base else _PRIOR_P
        for i in range(min(k, len(self.reached))):
            if self.reached[i]:
                b = base[i] if base is not None else rate
                rate = (self.hits[i] + _PRIOR * b) / (self.reached[i] + _PRIOR)
            elif base is not None and prior is not None and prior.reached[i]:
                rate = base[i]
            elif i > 0:
                rate = max(rate, _UNTRIED_P)  # nobody went this deep: assume the run goes on
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

    Drafts are handed out best first; how many is the count whose step has the highest
    expected tokens per second (over every count, not stopping at the first that does not
    pay: measured costs are not convex). When that is the largest size measured so far
    and more drafts are wanted, a step of twice that size is tried on trust: a step
    explores at most one size beyond the measured range, and the curve up to 64 tokens is
    known after a handful of steps (on a CPU, llama.cpp's flash attention gets much cheaper
    per token from 64 tokens of one sequence on, so the long end matters). When no draft
    pays, the best count that does not is taken anyway if its size has gone `_RECHECK`
    steps unmeasured: the curve is re-measured rather than trusted for ever.
    """
    given = [0] * len(wants)
    if room <= 0 or not wants:
        return given
    candidates = sorted(
        ((gain, i) for i, w in enumerate(wants) for gain in w.gains if gain > 0.0),
        key=lambda c: -c[0],
    )[:room]
    if not candidates:
        return given
    best_m, best_rate, expected = 0, -1.0, float(outputs)
    drafting_m, drafting_rate = 0, -1.0  # the best count of at least one draft
    for m in range(len(candidates) + 1):
        if m:
            expected += candidates[m - 1][0]
        seconds = cost.estimate(outputs, base + m)
        if seconds is None:
            if m == 0:
                best_m = 1  # nothing measured yet: one draft, on trust
            elif best_m == m - 1:
                # the best so far is the edge of the known: try a step twice that size, on
                # trust (the curve is learnt in a few steps, interpolated in between)
                best_m = min(len(candidates), max(m, 2 * (base + m - 1) - base))
            break
        rate = expected / seconds
        if rate > best_rate:
            best_m, best_rate = m, rate
        if m and rate > drafting_rate:
            drafting_m, drafting_rate = m, rate
    if best_m == 0 and drafting_m and cost.take_recheck(outputs, base + drafting_m):
        best_m = drafting_m
    for _, i in candidates[:best_m]:
        given[i] += 1
    return given

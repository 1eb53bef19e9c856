"""Speculative decoding, the pure part: n-gram proposals, draft length, and that
verification keeps the target's output distribution (statistical test on a small vocabulary).
"""

from __future__ import annotations

import itertools
import math
import random
from collections import Counter
from collections.abc import Callable, Sequence

import pytest

from app.engine.spec_policy import DepthAcceptance
from app.engine.speculative import (
    DraftLength,
    NgramIndex,
    RecentOutputs,
    SpecState,
    accept_reject,
    verify_drafts,
)

# A tiny "model": 4 tokens, the next-token distribution depends on the previous token.
TARGET = [
    [0.50, 0.20, 0.20, 0.10],
    [0.10, 0.60, 0.10, 0.20],
    [0.25, 0.25, 0.25, 0.25],
    [0.05, 0.05, 0.30, 0.60],
]
# A draft that disagrees with it on purpose.
DRAFT = [
    [0.10, 0.70, 0.10, 0.10],
    [0.40, 0.40, 0.10, 0.10],
    [0.70, 0.10, 0.10, 0.10],
    [0.25, 0.25, 0.25, 0.25],
]
START = 2
LENGTH = 3  # tokens generated per sample: 64 possible sequences


def target_probability(seq: Sequence[int]) -> float:
    p, prev = 1.0, START
    for t in seq:
        p *= TARGET[prev][t]
        prev = t
    return p


def draw(weights: Sequence[float], rng: random.Random) -> int:
    return rng.choices(range(len(weights)), weights=weights)[0]


def chi_square_critical(df: int, z: float = 3.719) -> float:
    """Wilson-Hilferty upper quantile of chi-square (z = 3.719: p = 1e-4)."""
    a = 2.0 / (9.0 * df)
    return float(df * (1.0 - a + z * math.sqrt(a)) ** 3)


def assert_matches_target(counts: Counter[tuple[int, ...]], n: int) -> None:
    stat = 0.0
    for seq in itertools.product(range(4), repeat=LENGTH):
        expected = n * target_probability(seq)
        stat += (counts.get(seq, 0) - expected) ** 2 / expected
    assert sum(counts.values()) == n
    assert stat < chi_square_critical(4**LENGTH - 1), stat


def collector(out: list[int]) -> Callable[[int, int], bool]:
    """An `emit` that records the tokens and never ends the sequence."""

    def emit(_i: int, token: int) -> bool:
        out.append(token)
        return True

    return emit


def generate(rng: random.Random, propose: int, general: bool) -> tuple[int, ...]:
    """LENGTH tokens by speculative steps of up to `propose` drafts."""
    out: list[int] = []
    while len(out) < LENGTH:
        prev = out[-1] if out else START
        k = min(propose, LENGTH - len(out) - 1)
        drafts: list[int] = []
        q: list[list[float]] = []
        p_prev = prev
        for _ in range(k):
            if general:  # drafts sampled from the draft distribution
                q.append(DRAFT[p_prev])
                d = draw(DRAFT[p_prev], rng)
            else:  # a deterministic proposer (n-gram lookup, greedy draft model)
                d = max(range(4), key=lambda t, row=DRAFT[p_prev]: row[t])  # type: ignore[misc]
            drafts.append(d)
            p_prev = d

        def target_at(i: int, drafts: list[int] = drafts, prev: int = prev) -> list[float]:
            return TARGET[drafts[i - 1] if i else prev]

        if general:
            out.extend(accept_reject(drafts, q, target_at, rng))
        else:
            emitted: list[int] = []
            verify_drafts(
                drafts,
                lambda i: draw(target_at(i), rng),
                collector(emitted),
            )
            out.extend(emitted)
    return tuple(out[:LENGTH])


@pytest.mark.parametrize("general", [True, False], ids=["sampled-draft", "point-draft"])
def test_speculative_output_has_the_target_distribution(general: bool) -> None:
    rng = random.Random(1234)
    n = 30_000
    counts = Counter(generate(rng, propose=2, general=general) for _ in range(n))
    assert_matches_target(counts, n)


def test_the_check_would_catch_a_wrong_rule() -> None:
    """Accepting every draft (no verification) gives the draft's distribution: refused."""
    rng = random.Random(99)
    n = 30_000
    counts: Counter[tuple[int, ...]] = Counter()
    for _ in range(n):
        prev, seq = START, []
        for _ in range(LENGTH):
            prev = draw(DRAFT[prev], rng)
            seq.append(prev)
        counts[tuple(seq)] += 1
    with pytest.raises(AssertionError):
        assert_matches_target(counts, n)


def test_verify_emits_accepted_drafts_and_one_more() -> None:
    sampled = iter([5, 6, 9, 1])
    emitted: list[int] = []
    n = verify_drafts([5, 6, 7], lambda _i: next(sampled), collector(emitted))
    assert n == 2
    assert emitted == [5, 6, 9]


def test_verify_all_accepted_emits_the_bonus_token() -> None:
    emitted: list[int] = []
    n = verify_drafts([1, 2], lambda i: [1, 2, 3][i], collector(emitted))
    assert (n, emitted) == (2, [1, 2, 3])


def test_verify_stops_when_the_sequence_ends() -> None:
    emitted: list[int] = []
    calls: list[int] = []

    def sample(i: int) -> int:
        calls.append(i)
        return [1, 2, 3][i]

    def emit(_i: int, token: int) -> bool:
        emitted.append(token)
        return token != 2  # e.g. a stop string completed by token 2

    assert verify_drafts([1, 2], sample, emit) == 1
    assert emitted == [1, 2]
    assert calls == [0, 1], "no sample (no accept into the chain) after the end"


def test_ngram_proposes_the_continuation_of_the_longest_match() -> None:
    history = [1, 2, 3, 4, 5, 6, 9, 2, 3, 4, 7, 8, 0, 1, 2, 3, 4]
    index = NgramIndex(history)
    # the last 3 tokens (2 3 4) occur twice; "1 2 3 4" at the start matches further back
    assert index.lookup(3)[0] == [5, 6, 9]
    index.append(5)
    assert index.lookup(2)[0] == [6, 9]
    assert index.lookup(0)[0] == []


def test_ngram_prefers_the_most_recent_match_on_ties_and_handles_no_match() -> None:
    index = NgramIndex([7, 1, 2, 3, 4, 8, 1, 2, 3, 5, 9, 1, 2, 3])
    assert index.lookup(2)[0] == [5, 9]
    assert NgramIndex([1, 2, 3, 4]).lookup(4)[0] == []
    assert NgramIndex([]).lookup(4)[0] == []


def test_ngram_continuation_may_run_into_the_current_end() -> None:
    index = NgramIndex([4, 4, 4, 4, 4])
    assert index.lookup(8)[0] == [4]


def test_ngram_lookup_reports_the_match_length() -> None:
    index = NgramIndex([1, 2, 3, 4, 5, 6, 9, 2, 3, 4, 7, 8, 0, 1, 2, 3, 4])
    assert index.lookup(2) == ([5, 6], 4)  # "1 2 3 4" matched, 4 tokens
    assert NgramIndex([1, 2, 3, 4]).lookup(2) == ([], 0)


def test_ngram_match_looks_up_the_end_of_another_history() -> None:
    earlier = NgramIndex([10, 11, 12, 13, 14, 15, 16, 12, 13, 14, 17])
    # the query ends with 11 12 13 14: the first occurrence matches 4 tokens, the second 3
    assert earlier.match([99, 11, 12, 13, 14], 3) == ([15, 16, 12], 4)
    assert earlier.match([98, 99, 12, 13, 14], 2) == ([17], 3)  # most recent on a tie
    assert earlier.match([12, 13, 14, 17], 4) == ([], 0), "the history's end has no continuation"
    assert earlier.match([5, 6, 7, 8], 4) == ([], 0)
    assert earlier.match([12, 13], 4) == ([], 0), "too short to look up"


def test_recent_outputs_keep_the_newest_tokens_within_bounds() -> None:
    recent = RecentOutputs(size=100)
    recent.add([1, 2, 3])  # too short to be worth indexing
    assert recent.index.tokens == []
    for start in range(0, 1000, 40):
        recent.add(list(range(start, start + 40)))
        assert len(recent.index.tokens) <= 200
    assert recent.index.tokens[-40:] == list(range(960, 1000))
    assert recent.index.match([0, 961, 962, 963], 2) == ([964, 965], 3)
    assert recent.index.match([0, 1, 2, 3], 2) == ([], 0), "old outputs were dropped"
    recent.add(list(range(5000, 5300)))  # longer than the whole memory: its newest part
    assert recent.index.tokens == list(range(5200, 5300))


def test_a_proposal_continues_the_longer_of_the_own_and_the_recent_match() -> None:
    recent = RecentOutputs()
    recent.add([7, 1, 2, 3, 4, 8, 9, 10])  # an earlier answer: "1 2 3 4" went on with 8 9 10
    state = SpecState("ngram", 8, [5, 2, 3, 4, 6, 6, 6, 1, 2, 3, 4])
    # own history: "2 3 4" then 6 (match of 3); the earlier answer: "1 2 3 4" (match of 4)
    assert state.ngram_proposal(8, recent) == [8, 9, 10]
    assert state.recalled
    pooled = DepthAcceptance(8)
    state.record(3, 1, pooled)  # counted as recalled drafts, not as the own history's
    assert state.recalled_depth.reached[:3] == [1, 1, 0]
    assert state.depth.reached == [0] * 8
    assert pooled.reached[:2] == [1, 1]
    # without it: the own history (2 tokens: the miss halved the draft length)
    assert state.ngram_proposal(8) == [6, 6]
    assert not state.recalled
    tie = RecentOutputs()
    tie.add([0, 2, 3, 4, 9, 9])
    assert state.ngram_proposal(8, tie) == [6, 6], "the own history on a tie"
    assert not state.recalled
    assert state.generated() == []
    assert state.index is not None
    state.index.extend([8, 9])
    assert state.generated() == [8, 9]


def test_draft_length_grows_shrinks_and_backs_off() -> None:
    dl = DraftLength(8)
    assert dl.want() == 4
    dl.update(4, 4)
    assert dl.want() == 8
    dl.update(8, 8)
    assert dl.want() == 8
    dl.update(8, 2)
    assert dl.want() == 4  # halved (more than the 2 accepted + 1)
    dl.update(4, 3)
    assert dl.want() == 4  # the 3 accepted + 1
    for _ in range(4):
        dl.update(3, 0)
    skipped = 0
    while dl.want() == 0:
        skipped += 1
    assert skipped >= 2, "low acceptance pauses speculation"
    assert DraftLength(0).want() == 0

"""The draft budget of a step (app/engine/spec_policy.py): drafts only where they pay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.engine.spec_policy import StepCost, Wanting, allocate


def cost_of(curve: dict[int, float]) -> StepCost:
    cost = StepCost()
    for n, seconds in curve.items():
        cost.observe(n, seconds)
    return cost


def throughput(outputs: int, given: list[int], wants: list[Wanting], seconds: float) -> float:
    expected = outputs + sum(w.p ** d for w, g in zip(wants, given, strict=True)
                             for d in range(1, g + 1))
    return expected / seconds


def test_estimate_is_measured_interpolated_or_unknown() -> None:
    cost = cost_of({1: 0.010, 9: 0.018})
    assert cost.estimate(1) == 0.010
    assert cost.estimate(5) == pytest.approx(0.014)
    assert cost.estimate(10) is None  # nothing measured at or above: unknown
    assert cost_of({4: 0.008}).estimate(2) == pytest.approx(0.004)  # proportional below
    cost.observe(1, 0.020)
    assert cost.estimate(1) == pytest.approx(0.012)  # running average, not the last value
    cost.observe(3, 0.0)  # nonsense measurements are ignored
    assert cost.estimate(3) == pytest.approx(0.012 + (0.018 - 0.012) * 2 / 8)


def test_nothing_measured_takes_every_draft_on_trust() -> None:
    wants = [Wanting(4, 0.5), Wanting(3, 0.9)]
    assert allocate(2, 2, wants, StepCost(), room=100) == [4, 3]
    assert sum(allocate(2, 2, wants, StepCost(), room=5)) == 5


def test_a_cpu_like_cost_turns_speculation_off_at_8_streams_but_not_at_1() -> None:
    # compute-bound: each token in the batch costs 7.5 ms on top of 2.5 ms per step
    cpu = cost_of({n: 0.0025 + 0.0075 * n for n in range(1, 33)})
    eight = [Wanting(8, 0.7)] * 8
    assert allocate(8, 8, eight, cpu, room=64) == [0] * 8
    # a sequence whose drafts are nearly always right pays even on that machine alone
    assert sum(allocate(1, 1, [Wanting(8, 0.99)], cpu, room=64)) > 0


def test_a_bandwidth_bound_cost_speculates_at_8_streams() -> None:
    # GPU-like: the weights' read dominates, 16 tokens cost 10% more than 8
    gpu = cost_of({n: 0.050 * (1 + 0.0125 * n) for n in range(1, 65)})
    given_ = allocate(8, 8, [Wanting(8, 0.7)] * 8, gpu, room=64)
    assert sum(given_) >= 16


def test_best_sequences_get_drafts_first() -> None:
    cost = cost_of({n: 0.01 * (1 + 0.2 * n) for n in range(1, 40)})
    given_ = allocate(2, 2, [Wanting(8, 0.3), Wanting(8, 0.95)], cost, room=64)
    assert given_[1] > given_[0]


curves = st.lists(st.floats(0.0001, 0.01), min_size=40, max_size=40).map(
    lambda steps: {n: sum(steps[:n]) + 0.001 for n in range(1, 41)})
wanting = st.lists(st.builds(Wanting, st.integers(0, 8), st.floats(0.0, 1.0)), max_size=8)


@given(curves, wanting, st.integers(1, 8), st.integers(0, 24))
def test_allocation_never_lowers_expected_throughput(
    curve: dict[int, float], wants: list[Wanting], base: int, room: int
) -> None:
    cost = cost_of(curve)
    given_ = allocate(base, base, wants, cost, room)
    assert all(0 <= g <= w.k for g, w in zip(given_, wants, strict=True))
    assert sum(given_) <= room
    assert all(g == 0 for g, w in zip(given_, wants, strict=True) if w.p == 0.0)
    drafts = sum(given_)
    assert (throughput(base, given_, wants, curve[base + drafts])
            >= throughput(base, [0] * len(wants), wants, curve[base]) * (1 - 1e-9))

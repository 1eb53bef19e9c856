"""The draft budget of a step (app/engine/spec_policy.py): drafts only where they pay."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.engine.spec_policy import DepthAcceptance, StepCost, Wanting, allocate


def geometric(k: int, p: float) -> tuple[float, ...]:
    """Gains of k drafts each accepted with probability p (given the ones before)."""
    return tuple(p ** d for d in range(1, k + 1))


def cost_of(curve: dict[int, float], streams: int = 1, times: int = 3) -> StepCost:
    """Steps of `streams` sequences cost curve[tokens], each size measured `times` times
    (3: trusted as measured)."""
    cost = StepCost()
    for _ in range(times):
        for n, seconds in curve.items():
            cost.observe(streams, n, seconds)
    return cost


def throughput(outputs: int, given: list[int], wants: list[Wanting], seconds: float) -> float:
    expected = outputs + sum(sum(w.gains[:g]) for w, g in zip(wants, given, strict=True))
    return expected / seconds


def test_estimate_is_measured_interpolated_or_unknown() -> None:
    cost = cost_of({1: 0.010, 9: 0.018})
    assert cost.estimate(1, 1) == 0.010
    assert cost.estimate(1, 5) == pytest.approx(0.014)
    assert cost.estimate(1, 10) is None  # nothing measured at or above: unknown
    assert cost_of({4: 0.008}).estimate(1, 2) == pytest.approx(0.004)  # proportional below
    cost.observe(1, 1, 0.020)  # a busy moment: the fastest recent measurement stands
    assert cost.estimate(1, 1) == 0.010
    cost.observe(1, 3, 0.0)  # nonsense measurements are ignored
    cost.observe(4, 3, 0.5)
    assert cost.estimate(1, 3) == pytest.approx(0.012)


def test_a_size_measured_once_is_no_dearer_than_its_neighbours_say() -> None:
    # one slow first measurement of 3 tokens (a graph being built) between two cheap sizes
    cost = cost_of({1: 0.010, 5: 0.030})
    cost.observe(1, 3, 0.040)
    assert cost.estimate(1, 3) == pytest.approx(0.020)  # optimistic until measured again
    cost.observe(1, 3, 0.041)
    cost.observe(1, 3, 0.039)
    assert cost.estimate(1, 3) == pytest.approx(0.039)  # three times slow: believed
    assert cost.estimate(1, 4) == pytest.approx(0.0345)  # never measured: interpolated
    cost.observe(1, 9, 0.5)  # the largest size, measured once: as measured
    assert cost.estimate(1, 9) == 0.5


def test_a_costly_size_in_the_middle_does_not_stop_deeper_drafts() -> None:
    # measured on this CPU: size 4 looked dear, 6 cheaper than 5; copying text accepts 95%
    cost = cost_of({1: 0.0161, 2: 0.0265, 3: 0.0376, 4: 0.0502, 5: 0.0595, 6: 0.0571,
                    7: 0.0767, 8: 0.0827})
    given_ = allocate(1, 1, [Wanting(geometric(8, 0.97))], cost, room=8)
    assert given_ == [5]  # 6 tokens: the best expected tokens per second on that curve


def test_steps_of_other_sequence_counts_are_other_curves() -> None:
    # 9 tokens as 9 sequences is one micro-batch; as 8 sequences + 1 draft it is two
    cost = cost_of({8: 0.040, 9: 0.045}, streams=9)
    assert cost.estimate(8, 9) is None
    for _ in range(3):
        cost.observe(8, 8, 0.040)
        cost.observe(8, 9, 0.058)
    assert cost.estimate(8, 9) == 0.058
    assert cost.estimate(9, 9) == 0.045


def test_a_drafting_size_follows_the_plain_steps_cost() -> None:
    # measured on this CPU at 8 streams: the plain step went 72 -> 84 ms as contexts grew,
    # while a 12-token step measured early kept its fast figure and made drafts look cheap
    cost = cost_of({8: 0.072, 12: 0.105}, streams=8)
    assert cost.estimate(8, 12) == pytest.approx(0.105)
    for _ in range(5):
        cost.observe(8, 8, 0.084)
    assert cost.estimate(8, 8) == pytest.approx(0.084)
    assert cost.estimate(8, 12) == pytest.approx(0.105 * 0.084 / 0.072)
    assert cost.estimate(8, 10) == pytest.approx(0.084 + (0.105 - 0.072) * 0.084 / 0.072 / 2)
    for _ in range(5):  # and back down: a quieter moment makes the drafts cheaper again
        cost.observe(8, 8, 0.060)
    assert cost.estimate(8, 12) == pytest.approx(0.105 * 0.060 / 0.072)
    cost.observe(8, 12, 0.080)  # a new measurement relative to the plain step of its moment
    assert cost.estimate(8, 12) == pytest.approx(0.080)


def test_without_a_plain_step_a_drafting_size_is_as_measured() -> None:
    cost = cost_of({3: 0.030}, streams=2)  # every step drafted: nothing to scale by
    assert cost.estimate(2, 3) == pytest.approx(0.030)
    cost = cost_of({1: 0.010, 5: 0.030})
    for _ in range(4100):  # the plain step long unmeasured is forgotten; ...
        cost.observe(1, 5, 0.030)
    assert cost.estimate(1, 1) == pytest.approx(0.030 / 5)  # (below the smallest size)
    assert cost.estimate(1, 5) == pytest.approx(0.030)  # ... the rest is as measured


def test_a_slow_moment_is_forgotten() -> None:
    cost = cost_of({1: 0.010, 9: 0.500})  # a first allocation made size 9 look dear
    assert cost.estimate(1, 9) == 0.500
    for _ in range(4100):  # steps of other sizes only
        cost.observe(1, 1, 0.010)
    assert cost.estimate(1, 9) is None  # unknown again: the next draft step measures it afresh
    for _ in range(5):
        cost.observe(1, 9, 0.020)
    assert cost.estimate(1, 9) == 0.020


def test_a_belief_formed_in_a_busy_moment_is_measured_again() -> None:
    # every draft size was measured (3 times: trusted) while the machine was busy, 3x dearer
    # than it is; the text is being copied, so drafts would pay at the machine's real cost
    def real(n: int) -> float:
        return 0.010 + 0.002 * (n - 1)

    cost = cost_of({n: real(n) * (3 if n > 1 else 1) for n in range(1, 66)})
    copying = [Wanting(geometric(64, 0.95))]
    assert allocate(1, 1, copying, cost, room=64) == [0]
    for _ in range(200):  # plain steps: the belief stands until it is old
        cost.observe(1, 1, real(1))
        assert allocate(1, 1, copying, cost, room=64) == [0]
    for _ in range(60):
        cost.observe(1, 1, real(1))
    probe = allocate(1, 1, copying, cost, room=64)  # old now: measured again, once
    assert probe[0] > 0
    assert allocate(1, 1, copying, cost, room=64) == [0]  # one recheck per 256 steps
    cost.observe(1, 1 + probe[0], real(1 + probe[0]))  # a quiet moment: the real cost
    assert allocate(1, 1, copying, cost, room=64)[0] > 0  # drafting again


def test_depth_acceptance_tells_copying_from_free_text() -> None:
    copying, free = DepthAcceptance(8), DepthAcceptance(8)
    for _ in range(200):
        copying.record(8, 8)
        free.record(8, 1)
    assert copying.gains(8)[-1] > 0.9
    assert free.gains(8)[0] > 0.9
    assert free.gains(8)[1] < 0.1
    # the prior: 0.6 for a first draft, deeper ones optimistic until tried
    assert DepthAcceptance(8).gains(3) == pytest.approx((0.6, 0.54, 0.486))
    short = DepthAcceptance(8)
    for _ in range(20):
        short.record(2, 2)  # only depths 1-2 ever tried, always accepted
    assert short.gains(8)[-1] > 0.6  # deeper depths borrow that rate
    gains = DepthAcceptance(4)
    gains.record(4, 4)
    gains.record(2, 0)  # depth 3, 4 not tried this time
    assert list(gains.gains(4)) == sorted(gains.gains(4), reverse=True)
    assert len(gains.gains(9)) == 4
    # a new sequence starts from the worker's pooled rates, not the bare prior
    assert DepthAcceptance(8).gains(8, copying)[-1] > 0.9


def test_unmeasured_sizes_are_explored_by_doubling() -> None:
    wants = [Wanting(geometric(4, 0.5)), Wanting(geometric(3, 0.9))]
    assert allocate(2, 2, wants, StepCost(), room=100) == [0, 1]  # the best draft, on trust
    cost = cost_of({2: 0.010, 3: 0.011}, streams=2)  # a cheap first draft was measured
    assert sum(allocate(2, 2, wants, cost, room=100)) == 4  # ... so a step of 6 is tried
    assert sum(allocate(2, 2, wants, cost, room=3)) == 3  # (within the room)
    assert allocate(2, 2, wants, cost, room=0) == [0, 0]
    # copying text on a CPU-like curve: from nothing to a 64-token step in 7 steps
    cost, steps, size = StepCost(), 0, 1
    cost.observe(1, 1, 0.012)  # the steps without drafts
    copying = [Wanting(geometric(64, 0.999))]
    while size < 64 and steps < 20:
        size = 1 + sum(allocate(1, 1, copying, cost, room=64))
        cost.observe(1, size, 0.012 + 0.006 * (size - 1))
        steps += 1
    assert size == 64
    assert steps <= 7


def test_a_cheaper_long_step_is_found_past_a_dearer_middle() -> None:
    # this CPU at a 900-token context: 63 tokens of one sequence 721 ms, 64 tokens 475 ms
    # (llama.cpp's tiled flash attention); copying text drafts the long step
    curve = {1: 0.0208, 9: 0.1155, 17: 0.2016, 33: 0.3463, 49: 0.5569, 63: 0.7208,
             64: 0.4746, 65: 0.4881}
    given_ = allocate(1, 1, [Wanting(geometric(64, 0.995))], cost_of(curve), room=64)
    assert given_ == [63]


def test_a_cpu_like_cost_turns_speculation_off_at_8_streams_but_not_at_1() -> None:
    # compute-bound: each token in the batch costs 7.5 ms on top of 2.5 ms per step
    def cpu(streams: int) -> StepCost:
        return cost_of({n: 0.0025 + 0.0075 * n for n in range(streams, 80)}, streams)

    eight = [Wanting(geometric(8, 0.7))] * 8
    assert allocate(8, 8, eight, cpu(8), room=64) == [0] * 8
    # a sequence whose drafts are nearly always right pays even on that machine alone
    assert sum(allocate(1, 1, [Wanting(geometric(8, 0.99))], cpu(1), room=64)) > 0


def test_a_bandwidth_bound_cost_speculates_at_8_streams() -> None:
    # GPU-like: the weights' read dominates, 16 tokens cost 10% more than 8
    gpu = cost_of({n: 0.050 * (1 + 0.0125 * n) for n in range(8, 80)}, streams=8)
    given_ = allocate(8, 8, [Wanting(geometric(8, 0.7))] * 8, gpu, room=64)
    assert sum(given_) >= 16


def test_best_sequences_get_drafts_first() -> None:
    cost = cost_of({n: 0.01 * (1 + 0.2 * n) for n in range(2, 40)}, streams=2)
    given_ = allocate(2, 2, [Wanting(geometric(8, 0.3)), Wanting(geometric(8, 0.95))], cost,
                      room=64)
    assert given_[1] > given_[0]


curves = st.lists(st.floats(0.0001, 0.01), min_size=40, max_size=40).map(
    lambda steps: {n: sum(steps[:n]) + 0.001 for n in range(1, 41)})
wanting = st.lists(st.builds(geometric, st.integers(0, 8), st.floats(0.0, 1.0)).map(Wanting),
                   max_size=8)


@given(curves, wanting, st.integers(1, 8), st.integers(0, 24))
def test_allocation_never_lowers_expected_throughput(
    curve: dict[int, float], wants: list[Wanting], base: int, room: int
) -> None:
    cost = cost_of(curve, streams=base)
    given_ = allocate(base, base, wants, cost, room)
    assert all(0 <= g <= w.k for g, w in zip(given_, wants, strict=True))
    assert sum(given_) <= room
    assert all(g == 0 for g, w in zip(given_, wants, strict=True) if not any(w.gains))
    drafts = sum(given_)
    assert (throughput(base, given_, wants, curve[base + drafts])
            >= throughput(base, [0] * len(wants), wants, curve[base]) * (1 - 1e-9))

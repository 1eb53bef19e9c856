"""Slot choice and common prefix (pure)."""

from __future__ import annotations

from app.engine.slots import Slot, common_prefix, pick_slots


def test_common_prefix() -> None:
    assert common_prefix([], [1]) == 0
    assert common_prefix([1, 2, 3], [1, 2, 4]) == 2
    long = list(range(1000))
    assert common_prefix(long, [*long[:777], -1]) == 777
    assert common_prefix(long, long) == 1000


def test_longest_prefix_slot_gets_the_prefill() -> None:
    slots = [Slot(0, [9, 9]), Slot(1, [1, 2, 3]), Slot(2, [1, 2, 5, 6])]
    picked = pick_slots(slots, [1, 2, 3, 4], 1)
    assert picked is not None
    assert [s.seq for s in picked] == [1]


def test_busy_slots_skipped_and_shortage_returns_none() -> None:
    slots = [Slot(0, [1, 2, 3], busy=True), Slot(1), Slot(2)]
    assert pick_slots(slots, [1, 2, 3], 3) is None
    picked = pick_slots(slots, [1, 2, 3], 2)
    assert picked is not None
    assert sorted(s.seq for s in picked) == [1, 2]


def test_without_a_match_prefer_empty_then_least_recently_used() -> None:
    slots = [Slot(0, [5], last_used=1), Slot(1, [6], last_used=0), Slot(2)]
    picked = pick_slots(slots, [1], 1)
    assert picked is not None
    assert picked[0].seq == 2
    picked = pick_slots(slots, [1], 3)
    assert picked is not None
    assert [s.seq for s in picked] == [2, 1, 0]

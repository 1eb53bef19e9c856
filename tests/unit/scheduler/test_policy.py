"""Table tests of app.scheduler.policy.decide (sizes in GiB, budget 100 GiB unless said)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from app.scheduler.policy import Decision, ModelView, Status, decide, fewest

GIB = 1 << 30
NOW = 1000.0


@dataclass(frozen=True)
class M:
    """Compact spec of a ModelView: `size` is both need and (when resident) reserved."""

    status: Status = "unloaded"
    size: float = 10
    active: int = 0
    queued: int = 0
    used: float = 0.0  # last_used
    pinned: bool = False
    since: float | None = None  # waiting_since
    loaded_at: float = 0.0

    def view(self, name: str) -> ModelView:
        resident = self.status in ("loading", "loaded", "draining")
        size = int(self.size * GIB)
        return ModelView(
            name,
            self.status,
            size if resident else 0,
            size,
            self.active,
            self.queued,
            self.used,
            self.pinned,
            self.since,
            self.loaded_at,
        )


def run(models: dict[str, M], target: str = "t", budget: float = 100, **kw: float) -> Decision:
    views = {name: m.view(name) for name, m in models.items()}
    return decide(target, views, int(budget * GIB), now=NOW, **kw)


CASES: list[tuple[str, dict[str, M], tuple[str, tuple[str, ...], tuple[str, ...]]]] = [
    # (case, models, (action, evict, drain))
    ("loaded serves", {"t": M("loaded", active=3)}, ("serve", (), ())),
    ("loading joins", {"t": M("loading")}, ("join", (), ())),
    ("draining waits", {"t": M("draining", active=1)}, ("wait", (), ())),
    ("fits loads", {"t": M(size=40), "a": M("loaded", 50)}, ("load", (), ())),
    ("exact fit loads", {"t": M(size=50), "a": M("loaded", 50)}, ("load", (), ())),
    ("failed retries", {"t": M("failed", 40), "a": M("loaded", 50)}, ("load", (), ())),
    (
        "unloaded and failed hold nothing",
        {"t": M(size=90), "a": M("failed", 80), "b": M("unloaded", 80)},
        ("load", (), ()),
    ),
    (
        "evicts the least recently used idle model",
        {
            "t": M(size=40),
            "a": M("loaded", 30, used=5),
            "b": M("loaded", 30, used=1),
            "c": M("loaded", 30, used=9),
        },
        ("load", ("b",), ()),
    ),
    (
        "evicts as few as needed, not the oldest first",
        {
            "t": M(size=60),
            "a": M("loaded", 10, used=1),
            "b": M("loaded", 20, used=2),
            "c": M("loaded", 50, used=3),
        },
        ("load", ("c",), ()),
    ),
    (
        "evicts two when one is not enough",
        {
            "t": M(size=70),
            "a": M("loaded", 30, used=3),
            "b": M("loaded", 30, used=1),
            "c": M("loaded", 30, used=2),
        },
        ("load", ("b", "c"), ()),
    ),
    (
        "never evicts a busy, loading or pinned model",
        {
            "t": M(size=40),
            "busy": M("loaded", 40, active=1, queued=2, used=0),
            "loading": M("loading", 30),
            "pin": M("loaded", 20, pinned=True, used=0),
            "idle": M("loaded", 10, used=50),
        },
        ("wait", (), ()),
    ),
    (
        "drains a busy model without a queue at once, evicting idle ones it needs",
        {
            "t": M(size=60),
            "busy": M("loaded", 50, active=1, used=9),
            "idle": M("loaded", 20),
            "pin": M("loaded", 30, pinned=True),
        },
        ("wait", ("idle",), ("busy",)),
    ),
    (
        "drains the fewest busy models",
        {
            "t": M(size=60),
            "b1": M("loaded", 20, active=1, used=1),
            "b2": M("loaded", 70, active=1, used=2),
        },
        ("wait", (), ("b2",)),
    ),
    (
        "drains the least recently used among equals",
        {
            "t": M(size=50),
            "b1": M("loaded", 50, active=1, used=7),
            "b2": M("loaded", 50, active=1, used=3),
        },
        ("wait", (), ("b2",)),
    ),
    (
        "waits for a drain already under way",
        {"t": M(size=60), "d": M("draining", 50, active=1), "a": M("loaded", 40, active=1)},
        ("wait", (), ()),
    ),
    ("waits for a load in progress", {"t": M(size=60), "l": M("loading", 80)}, ("wait", (), ())),
]


@pytest.mark.parametrize(("models", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decide_table(
    models: dict[str, M], expected: tuple[str, tuple[str, ...], tuple[str, ...]]
) -> None:
    d = run(models)
    assert (d.action, d.evict, d.drain) == expected, d.reason
    assert d.reason


def test_reasons_are_specific() -> None:
    loaded = run({"t": M(size=40), "a": M("loaded", 80, used=1)})
    assert loaded.reason == "t needs 40.0 GiB, 20.0 GiB free: evicting idle a"
    fits = run({"t": M(size=40)})
    assert fits.reason == "t needs 40.0 GiB, 100.0 GiB free"
    waiting = run({"t": M(size=60), "d": M("draining", 50, active=1)})
    assert waiting.reason == "t needs 60.0 GiB: waiting for d to drain"


def test_too_big_is_refused_with_sizes() -> None:
    d = run({"t": M(size=120.5), "a": M("loaded", 10)})
    assert d == Decision("refuse", reason="t needs 120.5 GiB, budget 100.0 GiB")


def test_pinned_models_make_it_too_big() -> None:
    d = run(
        {
            "t": M(size=60),
            "p1": M("loaded", 30, pinned=True),
            "p2": M("loading", 20, pinned=True),
            "p3": M("unloaded", 50, pinned=True),
            "a": M("loaded", 10),
        }
    )
    assert d.action == "refuse"
    assert d.reason == (
        "t needs 60.0 GiB, budget 100.0 GiB of which 50.0 GiB is held by pinned models (p1, p2)"
    )
    # the target's own pin does not count against it
    assert run({"t": M(size=60, pinned=True), "a": M("loaded", 50)}).action == "load"


def test_unknown_model_is_refused() -> None:
    assert run({"a": M("loaded")}, target="nope").action == "refuse"


class TestPingPongGuard:
    """A busy model with queued requests keeps them until the target waited swap_after AND the
    busy model has been resident that long."""

    def models(self, since: float, loaded_at: float = 0.0, queued: int = 3) -> dict[str, M]:
        return {
            "t": M(size=60, since=since, queued=1),
            "b": M("loaded", 60, active=1, queued=queued, loaded_at=loaded_at),
        }

    def test_guarded_until_the_target_waited(self) -> None:
        d = run(self.models(since=NOW - 4), swap_after=10)
        assert (d.action, d.drain, d.retry_at) == ("wait", (), NOW + 6)
        assert "b still serve queued requests" in d.reason

    def test_drained_once_the_target_waited(self) -> None:
        d = run(self.models(since=NOW - 10), swap_after=10)
        assert (d.action, d.drain, d.retry_at) == ("wait", ("b",), None)

    def test_a_fresh_model_keeps_its_batch(self) -> None:
        d = run(self.models(since=NOW - 100, loaded_at=NOW - 3), swap_after=10)
        assert (d.action, d.drain, d.retry_at) == ("wait", (), NOW + 7)

    def test_no_queue_no_guard(self) -> None:
        d = run(self.models(since=NOW, loaded_at=NOW, queued=0), swap_after=10)
        assert d.drain == ("b",)

    def test_disabled(self) -> None:
        assert run(self.models(since=NOW, loaded_at=NOW), swap_after=0).drain == ("b",)

    def test_prefers_an_unguarded_model(self) -> None:
        models = {
            "t": M(size=40, since=NOW - 1, queued=1),
            "b": M("loaded", 50, active=1, queued=3, used=1),
            "c": M("loaded", 50, active=2, used=500),
        }
        assert run(models, swap_after=10).drain == ("c",)

    def test_retry_at_is_the_earliest_release(self) -> None:
        models = {
            "t": M(size=40, since=NOW - 2, queued=1),
            "b": M("loaded", 50, active=1, queued=3, loaded_at=NOW - 9),
            "c": M("loaded", 50, active=1, queued=1, loaded_at=NOW - 1),
        }
        assert run(models, swap_after=10).retry_at == NOW + 8


def _v(name: str, size: int, used: float) -> ModelView:
    return ModelView(name, "loaded", size, size, 0, 0, used, False, None)


def test_fewest() -> None:
    a, b, c, d = _v("a", 1, 1), _v("b", 2, 2), _v("c", 5, 3), _v("d", 4, 0)
    assert fewest([a, b, c, d], 0) == ()
    assert fewest([a, b], 4) is None
    assert fewest([a, b, c, d], 1) == (d,)  # one is enough: the least recently used
    assert fewest([a, b, c, d], 5) == (c,)  # only c alone is enough
    assert fewest([a, b, c, d], 6) == (d, b)  # two needed: d first, then the oldest that works
    assert fewest([a, b, c, d], 12) == (d, a, b, c)

"""Which models to keep, evict or drain so that a request's model can run (pure, no I/O).

`decide` looks at a snapshot of every model (ModelView) and the memory budget and returns one
Decision; the caller applies it and calls again whenever something changes (a load finished,
a request ended, a drained model stopped, or the Decision's `retry_at` passed). Invariants are
listed in README.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

GIB = 1 << 30

Status = Literal["unloaded", "loading", "loaded", "draining", "failed"]
Action = Literal["serve", "join", "load", "wait", "refuse"]


@dataclass(frozen=True)
class ModelView:
    """What the policy needs to know about one model."""

    model_id: str
    status: Status
    reserved: int  # bytes held in the ledger (0 when unloaded/failed)
    need: int  # bytes it needs when loaded (estimate, or max(estimate, measured) once known)
    active: int  # requests running on it
    queued: int  # requests waiting for it
    last_used: float
    pinned: bool
    waiting_since: float | None  # oldest queued request's arrival time, if any
    loaded_at: float = 0.0  # when its current load finished (residency for the ping-pong guard)

    @property
    def idle(self) -> bool:
        """No request running or waiting."""
        return self.active == 0 and self.queued == 0


@dataclass(frozen=True)
class Decision:
    """What to do for a request; `evict`/`drain` apply whatever the action."""

    action: Action
    evict: tuple[str, ...] = ()  # idle models to stop now (before the load)
    drain: tuple[str, ...] = ()  # busy models to mark draining (stopped when their last ends)
    reason: str = ""
    retry_at: float | None = None  # decide again at this time even if nothing else changes


def gib(n: int) -> str:
    """Bytes as "12.3 GiB"."""
    return f"{n / GIB:.1f} GiB"


def _names(views: Iterable[ModelView]) -> tuple[str, ...]:
    return tuple(v.model_id for v in views)


def fewest(candidates: Sequence[ModelView], amount: int) -> tuple[ModelView, ...] | None:
    """The fewest candidates whose reservations add up to `amount`, least recently used first
    among sets of that size; None if all of them are not enough."""
    if amount <= 0:
        return ()
    sizes = sorted((c.reserved for c in candidates), reverse=True)
    k, total = 0, 0
    while total < amount and k < len(sizes):
        total, k = total + sizes[k], k + 1
    if total < amount:
        return None
    pool = sorted(candidates, key=lambda c: (c.last_used, c.model_id))
    chosen: list[ModelView] = []
    left = amount
    for i, cand in enumerate(pool):
        rest = sorted((c.reserved for c in pool[i + 1 :]), reverse=True)
        if cand.reserved + sum(rest[: k - len(chosen) - 1]) >= left:
            chosen.append(cand)
            left -= cand.reserved
            if left <= 0:
                break
    return tuple(chosen)


def decide(
    target: str,
    views: Mapping[str, ModelView],
    budget: int,
    *,
    now: float,
    swap_after: float = 10.0,
) -> Decision:
    """Decide what a request for `target` does now (see README.md for the rules)."""
    view = views.get(target)
    if view is None:
        return Decision("refuse", reason=f"unknown model {target!r}")
    if view.status == "loaded":
        return Decision("serve", reason=f"{target} is loaded")
    if view.status == "loading":
        return Decision("join", reason=f"{target} is loading")
    if view.status == "draining":
        return Decision("wait", reason=f"{target} is draining; it is loaded again once stopped")
    return _load_path(
        view, [v for v in views.values() if v.model_id != target], budget, now, swap_after
    )


def _load_path(
    view: ModelView, others: list[ModelView], budget: int, now: float, swap_after: float
) -> Decision:
    need, target = view.need, view.model_id
    pinned = [v for v in others if v.pinned and v.reserved > 0]
    held = sum(v.reserved for v in pinned)
    if need > budget:
        return Decision("refuse", reason=f"{target} needs {gib(need)}, budget {gib(budget)}")
    if need > budget - held:
        return Decision(
            "refuse",
            reason=(
                f"{target} needs {gib(need)}, budget {gib(budget)} of which {gib(held)} is held by "
                f"pinned models ({', '.join(_names(pinned))})"
            ),
        )
    free = budget - sum(v.reserved for v in others)
    if need <= free:
        return Decision("load", reason=f"{target} needs {gib(need)}, {gib(free)} free")
    deficit = need - free
    evictable = [v for v in others if v.status == "loaded" and not v.pinned]
    idle = [v for v in evictable if v.idle]
    victims = fewest(idle, deficit)
    if victims is not None:
        return Decision(
            "load",
            evict=_names(victims),
            reason=(
                f"{target} needs {gib(need)}, {gib(free)} free: evicting idle "
                f"{', '.join(_names(victims))}"
            ),
        )
    draining = [v for v in others if v.status == "draining"]
    short = deficit - sum(v.reserved for v in idle) - sum(v.reserved for v in draining)
    if short <= 0:
        return Decision(
            "wait",
            reason=(
                f"{target} needs {gib(need)}: waiting for {', '.join(_names(draining))} to drain"
            ),
        )
    busy = [v for v in evictable if not v.idle]
    allowed = [v for v in busy if _swappable_at(view, v, now, swap_after) <= now]
    drain = fewest(allowed, short)
    if drain is None:
        return _blocked(view, busy, allowed, short, now, swap_after)
    amount = deficit - sum(v.reserved for v in draining) - sum(v.reserved for v in drain)
    evict = fewest(idle, amount) or ()
    return Decision(
        "wait",
        evict=_names(evict),
        drain=_names(drain),
        reason=(
            f"{target} needs {gib(need)}, {gib(free)} free: draining busy "
            f"{', '.join(_names(drain))}"
            + (f", evicting idle {', '.join(_names(evict))}" * bool(evict))
        ),
    )


def _swappable_at(view: ModelView, busy: ModelView, now: float, swap_after: float) -> float:
    """Ping-pong guard: a busy model with queued requests is drained only once the target's
    oldest request has waited `swap_after` AND the busy model has been loaded that long (so
    each swap serves a batch, and a swap back does not happen after a single request)."""
    if busy.queued == 0:
        return now
    since = view.waiting_since if view.waiting_since is not None else now
    return max(since, busy.loaded_at) + swap_after


def _blocked(
    view: ModelView,
    busy: list[ModelView],
    allowed: list[ModelView],
    short: int,
    now: float,
    swap_after: float,
) -> Decision:
    """Nothing can be drained yet: say why and, for the ping-pong guard, when to retry."""
    target = f"{view.model_id} needs {gib(view.need)}"
    guarded = [v for v in busy if v not in allowed]
    if guarded and fewest(busy, short) is not None:
        return Decision(
            "wait",
            retry_at=min(_swappable_at(view, v, now, swap_after) for v in guarded),
            reason=(
                f"{target}: {', '.join(_names(guarded))} still serve queued requests; swapping "
                f"after {swap_after:g} s of waiting"
            ),
        )
    return Decision("wait", reason=f"{target}: waiting for loading or busy models to finish")

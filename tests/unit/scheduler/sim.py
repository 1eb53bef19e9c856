"""A discrete-event scheduler that applies app.scheduler.policy.decide and checks the invariants.

Requests arrive, wait for their model, run in one of its slots and finish; loads take a while
and may fail (first attempt only). After every event each waiting request is decided again
(oldest first) until nothing changes. Every violated invariant raises AssertionError.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from app.scheduler.policy import Decision, ModelView, Status, decide


@dataclass
class SimModel:
    model_id: str
    need: int
    pinned: bool
    load_time: float
    fail_first_load: bool = False
    slots: int = 2
    status: Status = "unloaded"
    reserved: int = 0
    last_used: float = 0.0
    loaded_at: float = 0.0
    loads: int = 0
    running: set[int] = field(default_factory=set)


@dataclass
class SimRequest:
    rid: int
    model: str
    arrival: float
    duration: float
    outcome: str | None = None  # "served" or "refused"
    reason: str = ""


@dataclass
class Sim:
    models: dict[str, SimModel]
    requests: list[SimRequest]
    budget: int
    swap_after: float = 10.0
    now: float = 0.0
    waiting: list[SimRequest] = field(default_factory=list)
    events: list[tuple[float, int, str, str]] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    _seq: int = 0

    def push(self, at: float, kind: str, arg: str) -> None:
        self._seq += 1
        heapq.heappush(self.events, (at, self._seq, kind, arg))

    def views(self) -> dict[str, ModelView]:
        out = {}
        for m in self.models.values():
            mine = [r for r in self.waiting if r.model == m.model_id]
            since = min((r.arrival for r in mine), default=None)
            out[m.model_id] = ModelView(
                m.model_id,
                m.status,
                m.reserved,
                m.need,
                len(m.running),
                len(mine),
                m.last_used,
                m.pinned,
                since,
                m.loaded_at,
            )
        return out

    def run(self, max_events: int = 100_000) -> None:
        """Run to the end; every request must end served or refused (no deadlock)."""
        for r in self.requests:
            self.push(r.arrival, "arrive", str(r.rid))
        for _ in range(max_events):
            if not self.events:
                break
            self.now, _, kind, arg = heapq.heappop(self.events)
            self._event(kind, arg)
            self._schedule()
        else:
            raise AssertionError("simulation did not finish")
        stuck = [(r.rid, r.model) for r in self.requests if r.outcome is None]
        assert not stuck, f"deadlock: requests {stuck} never served or refused"
        assert all(m.status != "loading" and not m.running for m in self.models.values())

    def _event(self, kind: str, arg: str) -> None:
        if kind == "arrive":
            self.waiting.append(self.requests[int(arg)])
        elif kind == "loaded":
            m = self.models[arg]
            assert m.status == "loading", f"{arg} finished loading while {m.status}"
            if m.fail_first_load and m.loads == 1:
                m.status, m.reserved = "failed", 0
            else:
                m.status, m.last_used, m.loaded_at = "loaded", self.now, self.now
        elif kind == "finish":
            req = self.requests[int(arg)]
            m = self.models[req.model]
            m.running.discard(req.rid)
            req.outcome, m.last_used = "served", self.now
            if m.status == "draining" and not m.running:
                self._stop(m)

    def _schedule(self) -> None:
        """Decide waiting requests oldest first; after any change start again from the oldest."""
        for _ in range(1000):
            for req in sorted(self.waiting, key=lambda r: (r.arrival, r.rid)):
                d = decide(
                    req.model, self.views(), self.budget, now=self.now, swap_after=self.swap_after
                )
                self.decisions.append(d)
                changed = self._apply(req, d)
                self._check_ledger()
                if changed:
                    break
            else:
                return
        raise AssertionError("decisions keep changing state")

    def _apply(self, req: SimRequest, d: Decision) -> bool:
        changed = bool(d.evict or d.drain)
        for name in d.evict:
            m = self.models[name]
            views = self.views()[name]
            assert m.status == "loaded", f"evicted {name} while {m.status}"
            assert not m.pinned, f"evicted pinned {name}"
            assert views.idle, f"evicted busy {name}"
            self._stop(m)
        for name in d.drain:
            m = self.models[name]
            assert m.status == "loaded", f"drained {name} while {m.status}"
            assert not m.pinned, f"drained pinned {name}"
            m.status = "draining"
            if not m.running:
                self._stop(m)
        target = self.models[req.model]
        if d.action == "serve" and len(target.running) < target.slots:
            self.waiting.remove(req)
            target.running.add(req.rid)
            target.last_used = self.now
            self.push(self.now + req.duration, "finish", str(req.rid))
            return True
        if d.action == "load":
            assert target.status in ("unloaded", "failed")
            target.status, target.reserved = "loading", target.need
            target.loads += 1
            self.push(self.now + target.load_time, "loaded", target.model_id)
            return True
        if d.action == "refuse":
            self._check_refusal(target, d)
            self.waiting.remove(req)
            req.outcome, req.reason = "refused", d.reason
            return True
        if d.action == "wait":
            assert d.reason
            if d.retry_at is not None:
                assert d.retry_at > self.now
                self.push(d.retry_at, "tick", "")
        return changed

    def _stop(self, m: SimModel) -> None:
        assert m.status in ("loaded", "draining"), f"stopped {m.model_id} while {m.status}"
        assert not m.running, f"stopped busy {m.model_id}"
        m.status, m.reserved = "unloaded", 0

    def _check_ledger(self) -> None:
        used = sum(m.reserved for m in self.models.values())
        assert used <= self.budget, f"ledger {used} > budget {self.budget}"

    def _check_refusal(self, target: SimModel, d: Decision) -> None:
        held = sum(m.reserved for m in self.models.values() if m.pinned and m is not target)
        assert target.need > self.budget - held, f"refused {target.model_id} that could fit"
        assert "needs" in d.reason
        assert "budget" in d.reason

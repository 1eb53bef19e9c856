"""The world around the REAL scheduler core on a fake clock: workers that take time to load,
requests that take time to run, crashes, cancellations, admin calls and catalog changes.

The world makes no scheduling decision: it only turns the core's actions into later events
(StartLoad -> LoadDone/LoadFailed after the load time, Grant -> RequestEnded after the
request's duration, StopWorker -> WorkerStopped) and checks the invariants after every
event. Every violation raises AssertionError.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import dataclass, field

from app.scheduler import events as ev
from app.scheduler.core import Core


@dataclass
class Worker:
    model: str
    epoch: int
    loaded: bool = False
    dead: bool = False


@dataclass
class Request:
    rid: int
    model: str
    at: float
    duration: float
    sequences: int = 1
    cancel_after: float | None = None
    kind: str = "lease"  # lease | load | unload


@dataclass
class World:
    specs: dict[str, ev.ModelSpec]
    limits: ev.Limits
    load_time: dict[str, float]
    fails: dict[str, list[bool]]  # per model: does load attempt k fail? (beyond the list: no)
    measured: dict[str, float] = field(default_factory=dict)  # measured / estimated
    now: float = 0.0
    answers: dict[int, list[str]] = field(default_factory=dict)
    requests: dict[int, Request] = field(default_factory=dict)
    workers: dict[tuple[str, int], Worker] = field(default_factory=dict)
    running: dict[int, tuple[str, int, int]] = field(default_factory=dict)  # rid -> model, ep, n
    loads: dict[str, int] = field(default_factory=dict)
    explicit_loads: set[str] = field(default_factory=set)
    last_failure: dict[str, ev.MarkFailed] = field(default_factory=dict)
    stops: list[ev.StopWorker] = field(default_factory=list)
    _queue: list[tuple[float, int, Callable[[], ev.Event | None]]] = field(default_factory=list)
    _seq: int = 0
    _ticks: set[float] = field(default_factory=set)
    events: int = 0

    def __post_init__(self) -> None:
        self.core = Core(self.specs.values(), self.limits)
        self.pinned = {k for k, s in self.specs.items() if s.pinned}

    # ---- scheduling the world ----------------------------------------------------------------

    def at(self, when: float, make: Callable[[], ev.Event | None]) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (when, self._seq, make))

    def add_request(self, r: Request) -> None:
        self.requests[r.rid] = r
        self.answers[r.rid] = []
        if r.kind == "load":
            self.at(r.at, lambda: self._explicit_load(r))
        elif r.kind == "unload":
            self.at(r.at, lambda: ev.UnloadRequest(r.rid, r.model, self.now))
        else:
            self.at(r.at, lambda: ev.Arrive(r.rid, r.model, r.sequences, self.now))
        if r.cancel_after is not None:
            self.at(r.at + r.cancel_after, lambda: self._cancel(r.rid))

    def _explicit_load(self, r: Request) -> ev.Event:
        self.explicit_loads.add(r.model)
        return ev.LoadRequest(r.rid, r.model, self.now)

    def crash(self, model: str, when: float) -> None:
        self.at(when, lambda: self._crash(model))

    def change_catalog(self, when: float, added: tuple[ev.ModelSpec, ...],
                       removed: tuple[str, ...]) -> None:
        def make() -> ev.Event:
            for spec in added:
                self.specs[spec.model_id] = spec
                self.pinned.discard(spec.model_id)
                if spec.pinned:
                    self.pinned.add(spec.model_id)
            return ev.CatalogChanged(added, removed, self.now)
        self.at(when, make)

    def run(self, max_events: int = 50_000) -> None:
        while self._queue:
            self.events += 1
            assert self.events < max_events, "the world does not come to rest"
            self.now, _, make = heapq.heappop(self._queue)
            self._ticks.discard(self.now)
            event = make()
            if event is None:
                continue
            for action in self.core.handle(event):
                self._apply(action)
            self._check()
            wake = self.core.next_wakeup()
            if wake is not None and wake not in self._ticks:
                self._ticks.add(max(wake, self.now))
                self.at(max(wake, self.now), lambda: ev.Tick(self.now))
        self._check_end()

    # ---- the world's reactions ---------------------------------------------------------------

    def _apply(self, a: ev.Action) -> None:
        match a:
            case ev.StartLoad(model, epoch):
                self._start_load(model, epoch)
            case ev.StopWorker():
                self._stop(a)
            case ev.Grant(rid, model, epoch, n):
                self._answer(rid, "grant")
                w = self.workers[(model, epoch)]
                assert w.loaded, f"granted {rid} on {w}"
                assert not w.dead, f"granted {rid} on {w}"
                self.running[rid] = (model, epoch, n)
                self.at(self.now + self.requests[rid].duration, lambda: self._end(rid))
            case ev.Reject(rid, model, code, message):
                assert message
                self._answer(rid, f"reject:{code}")
            case ev.Done(rid):
                self._answer(rid, "done")
            case ev.MarkFailed():
                self.last_failure[a.model] = a
            case ev.Drain() | ev.Forget():
                pass

    def _answer(self, rid: int, what: str) -> None:
        assert not self.answers[rid], f"request {rid} answered twice: {self.answers[rid]} {what}"
        self.answers[rid].append(what)

    def _start_load(self, model: str, epoch: int) -> None:
        failure = self.last_failure.get(model)
        if failure is not None and failure.retry_at is not None and self.now < failure.retry_at:
            assert model in self.explicit_loads, f"{model} restarted during its back-off"
        self.explicit_loads.discard(model)
        self.workers[(model, epoch)] = w = Worker(model, epoch)
        attempt = self.loads.get(model, 0)
        self.loads[model] = attempt + 1
        plan = self.fails.get(model, [])
        fail = attempt < len(plan) and plan[attempt]

        def done() -> ev.Event:
            if fail:
                w.dead = True
                return ev.LoadFailed(model, epoch, "bad tensor", self.now)
            w.loaded = True
            need = round(self.specs[model].need * self.measured.get(model, 1.0))
            return ev.LoadDone(model, epoch, need, self.now)

        self.at(self.now + self.load_time.get(model, 1.0), done)

    def _stop(self, a: ev.StopWorker) -> None:
        self.stops.append(a)
        w = self.workers[(a.model, a.epoch)]
        assert w.loaded, f"stopped {a.model} while loading"
        busy = [rid for rid, (m, e, _) in self.running.items() if (m, e) == (a.model, a.epoch)]
        assert not busy, f"stopped {a.model} with requests {busy} running"
        if a.reason in ("memory", "ttl"):
            assert a.model not in self.pinned, f"stopped pinned {a.model} for {a.reason}"

        def stopped() -> ev.Event:
            w.dead = True
            return ev.WorkerStopped(a.model, a.epoch, self.now)

        self.at(self.now + 0.5, stopped)

    def _end(self, rid: int) -> ev.Event | None:
        got = self.running.pop(rid, None)
        if got is None:
            return None  # cancelled or cut by a crash already
        model, epoch, _ = got
        return ev.RequestEnded(rid, not self.workers[(model, epoch)].dead, self.now)

    def _cancel(self, rid: int) -> ev.Event | None:
        if not self.answers[rid]:
            self.answers[rid].append("cancel")
            return ev.Cancelled(rid, self.now)
        if rid in self.running:
            del self.running[rid]
            return ev.Cancelled(rid, self.now)
        return None

    def _crash(self, model: str) -> ev.Event | None:
        live = [w for w in self.workers.values() if w.model == model and w.loaded and not w.dead]
        if not live:
            return None
        w = live[0]
        w.dead = True
        for rid, (m, e, _) in list(self.running.items()):
            if (m, e) == (w.model, w.epoch):  # the engine fails them at once
                self.at(self.now, lambda rid=rid: self._end(rid))  # type: ignore[misc]
        return ev.WorkerExited(model, w.epoch, "killed by SIGKILL", self.now)

    # ---- invariants --------------------------------------------------------------------------

    def _check(self) -> None:
        models = self.core.models()
        # a worker may measure more than its estimate: the ledger then holds the measurement,
        # also for a model removed from the catalog while it stops
        over_estimate = sum(max(0, m.need - self.specs[m.model_id].need)
                            for m in self.core.models(removed=True) if m.model_id in self.specs)
        reserved = self.core.reserved()
        assert reserved <= self.limits.budget + over_estimate, (
            f"ledger {reserved} > budget {self.limits.budget}")
        for m in models:
            spec = self.specs[m.model_id]
            assert 0 <= m.active <= spec.slots, f"{m.model_id}: {m.active} of {spec.slots}"
            if m.status in ("loaded", "draining"):
                used = sum(n for (mm, e, n) in self.running.values()
                           if (mm, e) == (m.model_id, m.epoch)
                           and not self.workers[(mm, e)].dead)
                assert m.active == used or self.workers[(m.model_id, m.epoch)].dead
            if m.status in ("unloaded", "failed"):
                assert m.reserved == 0
        for node, budget in self.core.budgets.items():  # RPC nodes (issue 15)
            if node == ev.LOCAL:
                continue
            assert self.core.reserved(node) <= budget, f"node {node} over its budget"
            holders = [m.model_id for m in models if m.reserved and dict(m.nodes).get(node)]
            assert len(holders) <= 1, f"node {node} held by {holders} at once"

    def _check_end(self) -> None:
        unanswered = [rid for rid, a in self.answers.items() if not a]
        assert not unanswered, f"requests never answered: {unanswered}"
        assert self.core.waiting() == 0
        assert self.core.lease_count() == 0, "a lease outlived its request"
        assert not self.running
        for m in self.core.models():
            assert m.status != "loading", f"{m.model_id} still loading"
            assert m.active == 0

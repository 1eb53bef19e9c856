"""The scheduler's state machine: all model state and the memory ledger (pure).

`Core.handle(event) -> list[Action]` is the only way state changes; no I/O, no awaits, no
clock reads (time comes in with each event). Reads (`model`, `models`, `reserved`,
`next_wakeup`) never change anything. Admission is policy.decide over a snapshot of the
ledger; waiting requests are decided oldest first, starting again from the oldest after
every change. See README.md for the rules and the invariants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from app.scheduler import events as ev
from app.scheduler.policy import GIB, Decision, ModelView, Status, decide, fewest

_MAX_STEPS = 10_000  # a dispatch that keeps changing state this often is a bug


@dataclass
class _Model:
    spec: ev.ModelSpec
    need: int
    status: Status = "unloaded"
    reserved: int = 0
    measured: int = 0
    active: int = 0  # sequences granted on the current worker
    last_used: float = 0.0
    loaded_at: float = 0.0
    epoch: int = 0  # number of the current (or last) load
    stopping: bool = False  # a StopWorker is under way
    drain_reason: ev.StopReason = "memory"
    failure: str | None = None
    failures: int = 0  # worker deaths in a row (load or serving)
    retry_at: float | None = None  # back-off: requests refused until then
    unload_after_load: bool = False
    removed: bool = False


@dataclass
class _Waiter:
    rid: int
    model: str
    kind: Literal["lease", "load", "unload"]
    sequences: int
    arrival: float
    slot_since: float | None = None  # since when it waits only for free slots


@dataclass(frozen=True)
class _Lease:
    model: str
    epoch: int
    sequences: int


@dataclass(frozen=True)
class ModelState:
    """A read-only snapshot of one model."""

    model_id: str
    node: str
    status: Status
    need: int
    reserved: int
    measured: int
    active: int  # sequences in use
    waiting: int  # requests waiting for it
    pinned: bool
    last_used: float
    loaded_at: float
    epoch: int
    failure: str | None
    failures: int
    retry_at: float | None
    expires_at: float | None  # when the idle TTL unloads it (None: busy, pinned or no TTL)
    nodes: tuple[tuple[str, int], ...] = ()  # bytes on each RPC node (reserved iff reserved)


class Core:
    def __init__(self, specs: Iterable[ev.ModelSpec], limits: ev.Limits) -> None:
        self.limits = limits
        self.budgets: dict[str, int] = {ev.LOCAL: limits.budget, **dict(limits.node_budgets)}
        self._models: dict[str, _Model] = {s.model_id: _Model(s, s.need) for s in specs}
        self._waiters: list[_Waiter] = []  # oldest first
        self._leases: dict[int, _Lease] = {}
        self._retry_at: float | None = None  # the ping-pong guard's next decision time

    # ---- reads -----------------------------------------------------------------------------

    def models(self, *, removed: bool = False) -> list[ModelState]:
        """Every catalog model, sorted by id; models removed from the catalog but still
        holding memory (stopping) only with ``removed=True``."""
        return [self._snapshot(m) for _, m in sorted(self._models.items())
                if removed or not m.removed]

    def model(self, model_id: str) -> ModelState | None:
        m = self._models.get(model_id)
        return None if m is None or m.removed else self._snapshot(m)

    def reserved(self, node: str = ev.LOCAL) -> int:
        return sum(self._on(m, node)[1] for m in self._models.values())

    @staticmethod
    def _on(m: _Model, node: str) -> tuple[int, int]:
        """(need, reserved) of a model on one node; a split model holds its share of every
        node it uses while it holds its own node's reservation."""
        if node == m.spec.node:
            return m.need, m.reserved
        need = dict(m.spec.nodes).get(node, 0)
        return need, need if m.reserved else 0

    def _places(self, m: _Model) -> list[str]:
        return [m.spec.node, *(node for node, _ in m.spec.nodes)]

    def waiting(self) -> int:
        return sum(1 for w in self._waiters if w.kind == "lease")

    def lease_count(self) -> int:
        return len(self._leases)

    def next_wakeup(self) -> float | None:
        """When a Tick is due (a TTL, a slot wait or the ping-pong guard), if ever."""
        times = [m.expires_at for m in map(self._snapshot, self._models.values())
                 if m.expires_at is not None]
        times += [w.slot_since + self.limits.slot_wait for w in self._waiters
                  if w.slot_since is not None]
        if self._retry_at is not None:
            times.append(self._retry_at)
        return min(times, default=None)

    def _snapshot(self, m: _Model) -> ModelState:
        waiting = sum(1 for w in self._waiters if w.model == m.spec.model_id)
        expires = None
        if (m.status == "loaded" and not m.spec.pinned and m.spec.ttl > 0 and m.active == 0
                and waiting == 0):
            expires = m.last_used + m.spec.ttl
        return ModelState(
            model_id=m.spec.model_id, node=m.spec.node, status=m.status, need=m.need,
            reserved=m.reserved, measured=m.measured, active=m.active, waiting=waiting,
            pinned=m.spec.pinned, last_used=m.last_used, loaded_at=m.loaded_at, epoch=m.epoch,
            failure=m.failure, failures=m.failures, retry_at=m.retry_at, expires_at=expires,
            nodes=m.spec.nodes,
        )

    def _views(self, node: str, target: str | None = None) -> dict[str, ModelView]:
        """The models on `node`. An RPC node serves one client at a time, so for the `target`'s
        admission any other model holding it counts as holding all of it."""
        queued: dict[str, list[float]] = {}
        for w in self._waiters:
            if w.kind != "unload":
                queued.setdefault(w.model, []).append(w.arrival)
        views = {}
        for m in self._models.values():
            if node not in self._places(m):
                continue
            need, reserved = self._on(m, node)
            if node != ev.LOCAL and reserved and m.spec.model_id != target:
                reserved = max(reserved, self.budgets.get(node, 0))
            views[m.spec.model_id] = ModelView(
                model_id=m.spec.model_id, status=m.status, reserved=reserved, need=need,
                active=m.active, queued=len(queued.get(m.spec.model_id, ())),
                last_used=m.last_used, pinned=m.spec.pinned,
                waiting_since=min(queued.get(m.spec.model_id, ()), default=None),
                loaded_at=m.loaded_at,
            )
        return views

    def _decide(self, m: _Model, now: float) -> Decision:
        """policy.decide on every node the model uses, merged: refused if refused anywhere
        (with the sizes per node), else wait if any node must wait, else load; the evictions
        and drains of all nodes together."""
        model_id = m.spec.model_id
        decisions = [(node, decide(model_id, self._views(node, model_id),
                                   self.budgets.get(node, 0), now=now,
                                   swap_after=self.limits.swap_after))
                     for node in self._places(m)]
        if len(decisions) == 1:
            return decisions[0][1]
        refused = [(node, d) for node, d in decisions if d.action == "refuse"]
        if refused:
            sizes = ", ".join(f"{node} {self._on(m, node)[0] / GIB:.2f} GiB of "
                              f"{self.budgets.get(node, 0) / GIB:.2f}"
                              for node in self._places(m))
            reasons = "; ".join(f"{node}: {d.reason}" for node, d in refused)
            return Decision("refuse", reason=f"{reasons} (needs per node: {sizes})")
        first = decisions[0][1]
        if first.action in ("serve", "join"):
            return first  # decided by the model's own status, the same on every node
        evict = tuple(dict.fromkeys(x for _, d in decisions for x in d.evict))
        drain = tuple(dict.fromkeys(x for _, d in decisions for x in d.drain))
        waits = [d for _, d in decisions if d.action == "wait"]
        if waits:
            retry = [d.retry_at for d in waits if d.retry_at is not None]
            return Decision("wait", evict, drain, reason=waits[0].reason,
                            retry_at=min(retry, default=None))
        return Decision("load", evict, drain)

    # ---- events ----------------------------------------------------------------------------

    def handle(self, event: ev.Event) -> list[ev.Action]:
        out: list[ev.Action] = []
        match event:
            case ev.Arrive() | ev.LoadRequest() | ev.UnloadRequest():
                self._arrive(event, out)
            case ev.LoadDone():
                self._load_done(event, out)
            case ev.LoadFailed(model, epoch, reason, now):
                m = self._models.get(model)
                if m is not None and m.epoch == epoch and m.status == "loading":
                    self._fail(m, "load", reason, now, out)
            case ev.WorkerExited(model, epoch, reason, now):
                self._exited(model, epoch, reason, now, out)
            case ev.WorkerStopped(model, epoch, _):
                m = self._models.get(model)
                if m is not None and m.epoch == epoch and m.stopping:
                    self._stopped(m, out)
            case ev.RequestEnded(rid, alive, now):
                self._end(rid, alive, now, out)
            case ev.Cancelled(rid, now):
                if rid in self._leases:
                    self._end(rid, True, now, out)
                else:
                    self._waiters = [w for w in self._waiters if w.rid != rid]
            case ev.Tick(now):
                self._tick(now, out)
            case ev.CatalogChanged():
                self._catalog(event, out)
            case ev.NodeBudget(node, budget, _):
                self.budgets[node] = budget
        self._dispatch(event.now, out)
        return out

    def _arrive(self, e: ev.Arrive | ev.LoadRequest | ev.UnloadRequest,
                out: list[ev.Action]) -> None:
        m = self._models.get(e.model)
        if m is None or m.removed:
            out.append(ev.Reject(e.rid, e.model, "not_found",
                                 f"The model '{e.model}' does not exist"))
            return
        if isinstance(e, ev.UnloadRequest):
            self._unload(e.rid, m, e.now, out)
            return
        if isinstance(e, ev.LoadRequest):
            m.retry_at = None  # an explicit load retries a model that backs off
            self._waiters.append(_Waiter(e.rid, e.model, "load", 0, e.now))
            return
        if not 1 <= e.sequences <= m.spec.slots:
            out.append(ev.Reject(e.rid, e.model, "invalid",
                                 f"n must be between 1 and {m.spec.slots} for this model"))
            return
        if self.waiting() >= self.limits.max_waiting:
            out.append(ev.Reject(e.rid, e.model, "queue_full",
                                 f"{self.waiting()} requests are already waiting; try again "
                                 "later", retry_after=2.0))
            return
        self._waiters.append(_Waiter(e.rid, e.model, "lease", e.sequences, e.now))

    def _unload(self, rid: int, m: _Model, now: float, out: list[ev.Action]) -> None:
        if m.status in ("unloaded", "failed"):
            out.append(ev.Done(rid, m.spec.model_id, False))
            return
        if m.status == "loading":
            m.unload_after_load = True
        elif m.status == "loaded":
            self._drain(m, "api", out)
        self._waiters.append(_Waiter(rid, m.spec.model_id, "unload", 0, now))

    def _load_done(self, e: ev.LoadDone, out: list[ev.Action]) -> None:
        m = self._models.get(e.model)
        if m is None or m.epoch != e.epoch or m.status != "loading":
            return
        m.status, m.failure, m.retry_at = "loaded", None, None
        m.measured = e.measured
        m.need = max(m.spec.need, e.measured)
        m.reserved = m.need
        m.last_used = m.loaded_at = e.now
        if m.removed or m.unload_after_load:
            m.unload_after_load = False
            self._drain(m, "removed" if m.removed else "api", out)
            return
        over = self.reserved(m.spec.node) - self.budgets[m.spec.node]
        if over > 0:  # measured above the estimate: stop idle models to get back in budget
            views = self._views(m.spec.node)
            idle = [v for v in views.values() if v.status == "loaded" and v.idle
                    and not v.pinned and v.model_id != m.spec.model_id]
            for victim in fewest(idle, over) or idle:
                self._stop(self._models[victim.model_id], "memory", out)

    def _exited(self, model: str, epoch: int, reason: str, now: float,
                out: list[ev.Action]) -> None:
        m = self._models.get(model)
        if m is None or m.epoch != epoch:
            return
        if m.stopping:
            self._stopped(m, out)
        elif m.status in ("loaded", "draining"):
            self._fail(m, "serving", reason, now, out)
        elif m.status == "failed" and reason:
            m.failure = reason  # a later, more precise account of the same death

    def _end(self, rid: int, alive: bool, now: float, out: list[ev.Action]) -> None:
        lease = self._leases.pop(rid, None)
        m = self._models.get(lease.model) if lease else None
        if lease is None or m is None or m.epoch != lease.epoch:
            return
        if m.status not in ("loaded", "draining"):
            return  # its worker is already gone; its slots went with it
        m.active -= lease.sequences
        m.last_used = now
        if not alive and not m.stopping:
            self._fail(m, "serving", "the worker process exited", now, out)
            return
        if alive:
            m.failures = 0  # a request ran to its end: the worker works
        if m.status == "draining" and m.active == 0 and not m.stopping:
            self._stop(m, m.drain_reason, out)

    def _tick(self, now: float, out: list[ev.Action]) -> None:
        for m in list(self._models.values()):
            exp = self._snapshot(m).expires_at
            if exp is not None and now >= exp:
                self._stop(m, "ttl", out)
        for w in list(self._waiters):
            if w.slot_since is not None and now >= w.slot_since + self.limits.slot_wait:
                slots = self._models[w.model].spec.slots
                self._waiters.remove(w)
                out.append(ev.Reject(w.rid, w.model, "busy",
                                     f"all {slots} slots of '{w.model}' stayed busy for "
                                     f"{self.limits.slot_wait:.0f}s", retry_after=5.0))

    def _catalog(self, e: ev.CatalogChanged, out: list[ev.Action]) -> None:
        for spec in e.added:
            m = self._models.get(spec.model_id)
            if m is None:
                self._models[spec.model_id] = _Model(spec, spec.need)
                continue
            m.spec, m.removed = spec, False
            if m.status in ("unloaded", "failed"):
                m.need = spec.need
        for model_id in e.removed:
            m = self._models.get(model_id)
            if m is None or m.removed:
                continue
            m.removed = True
            for w in [w for w in self._waiters if w.model == model_id]:
                self._waiters.remove(w)
                if w.kind == "unload":
                    out.append(ev.Done(w.rid, model_id, True))
                else:
                    out.append(ev.Reject(w.rid, model_id, "not_found",
                                         f"The model '{model_id}' was removed"))
            if m.status in ("unloaded", "failed"):
                self._forget(m, out)
            elif m.status == "loaded":
                self._drain(m, "removed", out)

    # ---- transitions -----------------------------------------------------------------------

    def _start_load(self, m: _Model, out: list[ev.Action]) -> None:
        m.epoch += 1
        m.status, m.reserved, m.failure, m.retry_at = "loading", m.need, None, None
        m.active = 0
        out.append(ev.StartLoad(m.spec.model_id, m.epoch))

    def _drain(self, m: _Model, reason: ev.StopReason, out: list[ev.Action]) -> bool:
        if m.status != "loaded":
            return False
        m.status, m.drain_reason = "draining", reason
        out.append(ev.Drain(m.spec.model_id, reason))
        if m.active == 0:
            self._stop(m, reason, out)
        return True

    def _stop(self, m: _Model, reason: ev.StopReason, out: list[ev.Action]) -> None:
        m.status, m.stopping = "draining", True
        out.append(ev.StopWorker(m.spec.model_id, m.epoch, reason))

    def _stopped(self, m: _Model, out: list[ev.Action]) -> None:
        m.status, m.reserved, m.active, m.stopping = "unloaded", 0, 0, False
        self._answer_unloads(m, out)
        if m.removed:
            self._forget(m, out)

    def _fail(self, m: _Model, during: Literal["load", "serving"], reason: str, now: float,
              out: list[ev.Action]) -> None:
        m.status, m.reserved, m.active, m.stopping = "failed", 0, 0, False
        m.failure = reason
        m.failures += 1
        limits = self.limits
        if m.failures >= limits.crash_limit:
            wait = min(limits.backoff_cap, limits.backoff * 2 ** (m.failures - limits.crash_limit))
            m.retry_at = now + wait
        out.append(ev.MarkFailed(m.spec.model_id, m.epoch, during, reason, m.failures,
                                 m.retry_at))
        for w in [w for w in self._waiters if w.model == m.spec.model_id]:
            if w.kind == "unload":
                self._waiters.remove(w)
                out.append(ev.Done(w.rid, w.model, during == "serving"))
            elif during == "load":  # they joined this load
                self._waiters.remove(w)
                out.append(ev.Reject(w.rid, w.model, "load_failed",
                                     f"model '{w.model}' failed to load: {reason}"))
        m.unload_after_load = False
        if m.removed:
            self._forget(m, out)

    def _answer_unloads(self, m: _Model, out: list[ev.Action]) -> None:
        for w in [w for w in self._waiters if w.model == m.spec.model_id and w.kind == "unload"]:
            self._waiters.remove(w)
            out.append(ev.Done(w.rid, w.model, True))

    def _forget(self, m: _Model, out: list[ev.Action]) -> None:
        del self._models[m.spec.model_id]
        out.append(ev.Forget(m.spec.model_id))

    # ---- admission -------------------------------------------------------------------------

    def _dispatch(self, now: float, out: list[ev.Action]) -> None:
        for _ in range(_MAX_STEPS):
            if not self._step(now, out):
                return
        raise RuntimeError("scheduler dispatch does not settle")

    def _step(self, now: float, out: list[ev.Action]) -> bool:
        """Decide for waiting requests oldest first; True as soon as one changed something.

        Once an older request waits for memory, younger ones may still be served or join a
        load but start no loads, evictions or drains of their own; per model, requests get
        slots in arrival order (a large `n` is not overtaken forever by small ones).
        """
        blocked = False
        slot_queue: set[str] = set()
        retry: list[float] = []
        for w in self._waiters:
            if w.kind == "unload":
                continue
            m = self._models[w.model]
            if (w.kind == "lease" and m.status == "failed" and m.retry_at is not None
                    and now < m.retry_at):
                self._waiters.remove(w)
                out.append(ev.Reject(w.rid, w.model, "backoff", self._backoff_message(m, now),
                                     retry_after=m.retry_at - now))
                return True
            d = self._decide(m, now)
            if d.action != "serve":
                w.slot_since = None
            if d.action == "serve":
                if w.kind == "load":
                    self._waiters.remove(w)
                    out.append(ev.Done(w.rid, w.model, True))
                    return True
                if w.model not in slot_queue and m.spec.slots - m.active >= w.sequences:
                    self._grant(w, m, now, out)
                    return True
                slot_queue.add(w.model)
                if w.slot_since is None:
                    w.slot_since = now
            elif d.action == "refuse":
                self._waiters.remove(w)
                out.append(ev.Reject(w.rid, w.model, "insufficient_memory", d.reason))
                return True
            elif d.action in ("load", "wait") and not blocked:
                blocked = True
                changed = False
                for name in d.drain:
                    changed |= self._drain(self._models[name], "memory", out)
                for name in d.evict:
                    self._stop(self._models[name], "memory", out)
                    changed = True
                if d.action == "load" and not d.evict:
                    self._start_load(m, out)
                    changed = True
                if changed:
                    return True
                if d.retry_at is not None:
                    retry.append(d.retry_at)
        self._retry_at = min(retry, default=None)
        return False

    def _grant(self, w: _Waiter, m: _Model, now: float, out: list[ev.Action]) -> None:
        self._waiters.remove(w)
        m.active += w.sequences
        m.last_used = now
        self._leases[w.rid] = _Lease(w.model, m.epoch, w.sequences)
        out.append(ev.Grant(w.rid, w.model, m.epoch, w.sequences))

    @staticmethod
    def _backoff_message(m: _Model, now: float) -> str:
        assert m.retry_at is not None
        return (f"model '{m.spec.model_id}' failed {m.failures} times in a row "
                f"(last: {m.failure}); not restarted for {m.retry_at - now:.0f} s "
                "(POST /models/load retries it now)")

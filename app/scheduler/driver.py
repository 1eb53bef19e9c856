"""The scheduler's effects: worker processes, tasks and timers around the pure core.

Every change goes in as an event to `Core.handle`; the driver carries out the actions it
returns (start a load task, stop a worker, resolve a waiting request) and feeds their
results back as events. Events are handled one at a time, in order, on the event loop; a
timer brings a Tick when the core's next deadline (TTL, slot wait, swap guard) is due.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any

from app import errors
from app.catalog.catalog import Catalog, ModelEntry
from app.engine.client import WorkerSpec
from app.metrics import Metrics
from app.scheduler import events as ev
from app.scheduler.clock import Clock, LoopClock, Timer
from app.scheduler.core import Core, ModelState
from app.scheduler.engine import Engine, EngineFactory
from app.scheduler.estimate import MemoryEstimate
from app.scheduler.events import Limits

__all__ = ["Limits", "ModelInfo", "Scheduler"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelInfo:
    """What the HTTP layer shows of one model (a snapshot; times in seconds from now)."""

    entry: ModelEntry
    estimate: MemoryEstimate
    state: ModelState
    engine: Engine | None
    idle_seconds: float | None  # None while requests run or wait
    expires_in: float | None  # until the idle TTL unloads it
    retry_in: float | None  # until a model that backs off is tried again

    @property
    def status(self) -> str:
        return self.state.status

    @property
    def failure(self) -> str | None:
        return self.state.failure

    @property
    def reserved(self) -> int:
        return self.state.reserved

    @property
    def measured(self) -> int:
        return self.state.measured

    @property
    def active(self) -> int:
        return self.state.active

    @property
    def nodes(self) -> dict[str, int]:
        """Bytes needed per node, this box ("local") first; {} for a model on this box only."""
        if not self.state.nodes:
            return {}
        return {self.state.node: self.state.need, **dict(self.state.nodes)}


SplitFor = Callable[[ModelEntry, MemoryEstimate], Mapping[str, int]]
"""The estimate divided among this box (ev.LOCAL) and the model's RPC nodes."""


def _spec(entry: ModelEntry, estimate: MemoryEstimate,
          split_for: SplitFor | None = None) -> ev.ModelSpec:
    split = dict(split_for(entry, estimate)) if split_for and entry.nodes else {}
    if not split:
        return ev.ModelSpec(entry.id, estimate.total, entry.parallel, entry.pinned, entry.ttl)
    local = split.pop(ev.LOCAL, 0)
    return ev.ModelSpec(entry.id, local, entry.parallel, entry.pinned, entry.ttl,
                        nodes=tuple(split.items()))


class Scheduler:
    """Leases of models for requests; load and unload; the views of /v1/models and /system."""

    def __init__(
        self,
        catalog: Catalog,
        engine_factory: EngineFactory,
        spec_for: Callable[[ModelEntry], WorkerSpec],
        estimate_for: Callable[[ModelEntry], MemoryEstimate],
        limits: Limits,
        metrics: Metrics,
        clock: Clock | None = None,
        split_for: SplitFor | None = None,
    ) -> None:
        self.limits = limits
        self._split_for = split_for
        self._factory = engine_factory
        self._spec_for = spec_for
        self._estimate_for = estimate_for
        self._metrics = metrics
        self._clock: Clock = clock or LoopClock()
        self._entries: dict[str, ModelEntry] = {}
        self._estimates: dict[str, MemoryEstimate] = {}
        for entry in catalog:
            self._add_entry(entry)
        self._core = Core((_spec(self._entries[k], self._estimates[k], split_for)
                           for k in self._entries), limits)
        self._engines: dict[str, tuple[int, Engine]] = {}
        self._grants: dict[int, asyncio.Future[Engine]] = {}
        self._answers: dict[int, asyncio.Future[bool]] = {}
        self._ids = itertools.count(1)
        self._events: deque[ev.Event] = deque()
        self._feeding = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: Timer | None = None
        self._timer_at: float | None = None
        self._closed = False
        self._forgotten = asyncio.Event()  # set (and replaced) whenever a model is forgotten
        metrics.pool.labels("budget").set(limits.budget)
        for node, budget in self._core.budgets.items():
            metrics.node_memory.labels(node, "budget").set(budget)
        self._publish()

    def _add_entry(self, entry: ModelEntry) -> ev.ModelSpec:
        estimate = self._estimate_for(entry)
        self._entries[entry.id], self._estimates[entry.id] = entry, estimate
        self._metrics.memory.labels(entry.id, "estimated").set(estimate.total)
        spec = _spec(entry, estimate, self._split_for)
        for node, need in ((ev.LOCAL, spec.need), *spec.nodes) if spec.nodes else ():
            self._metrics.model_node_memory.labels(entry.id, node).set(need)
        return spec

    # ---- views -----------------------------------------------------------------------------

    def state(self, model_id: str) -> ModelInfo:
        state = self._core.model(model_id)
        if state is None:
            raise errors.ModelNotFound(f"The model '{model_id}' does not exist", param="model")
        return self._info(state)

    def states(self) -> list[ModelInfo]:
        return [self._info(s) for s in self._core.models()]

    @property
    def reserved(self) -> int:
        return self._core.reserved()

    def set_node_budget(self, node: str, budget: int) -> None:
        """A node down at startup came up: admit against what it offers now."""
        self._metrics.node_memory.labels(node, "budget").set(budget)
        self._feed(ev.NodeBudget(node, budget, self._clock.now()))

    def nodes(self) -> dict[str, tuple[int, int]]:
        """Every node's (budget, reserved): this box ("local") first, then the RPC nodes."""
        return {node: (budget, self._core.reserved(node))
                for node, budget in self._core.budgets.items()}

    def _info(self, s: ModelState) -> ModelInfo:
        now = self._clock.now()
        pair = self._engines.get(s.model_id)
        engine = pair[1] if pair and pair[0] == s.epoch else None
        idle = now - s.last_used if s.active == 0 and s.waiting == 0 else None
        return ModelInfo(
            entry=self._entries[s.model_id], estimate=self._estimates[s.model_id], state=s,
            engine=engine, idle_seconds=idle,
            expires_in=None if s.expires_at is None else max(0.0, s.expires_at - now),
            retry_in=None if s.retry_at is None else max(0.0, s.retry_at - now),
        )

    # ---- requests and admin ----------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, model_id: str, sequences: int = 1) -> AsyncIterator[Engine]:
        """Hold `sequences` slots of a loaded model for one request."""
        rid = next(self._ids)
        fut: asyncio.Future[Engine] = asyncio.get_running_loop().create_future()
        self._grants[rid] = fut
        self._feed(ev.Arrive(rid, model_id, sequences, self._clock.now()))
        try:
            engine = await fut
        except asyncio.CancelledError:
            self._feed(ev.Cancelled(rid, self._clock.now()))
            raise
        finally:
            self._grants.pop(rid, None)
        try:
            yield engine
        finally:
            self._feed(ev.RequestEnded(rid, engine.alive, self._clock.now()))

    async def load(self, model_id: str) -> None:
        """Load without serving (POST /models/load); at once if it is loaded, even if busy."""
        await self._ask(lambda rid, now: ev.LoadRequest(rid, model_id, now))

    async def unload(self, model_id: str, reason: str = "api") -> bool:
        """Drain the model and stop its worker. False if it was not loaded."""
        return await self._ask(lambda rid, now: ev.UnloadRequest(rid, model_id, now))

    async def _ask(self, make: Callable[[int, float], ev.Event]) -> bool:
        rid = next(self._ids)
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._answers[rid] = fut
        self._feed(make(rid, self._clock.now()))
        try:
            return await fut
        except asyncio.CancelledError:
            self._feed(ev.Cancelled(rid, self._clock.now()))
            raise
        finally:
            self._answers.pop(rid, None)

    def set_ttl(self, model_id: str, seconds: float | None) -> None:
        """Idle seconds before `model_id` unloads, from now on (None: never); Ollama's
        `keep_alive`. A rescan that finds the model's entry changed resets it."""
        entry = self._entries.get(model_id)
        if entry is None or self._core.model(model_id) is None:
            raise errors.ModelNotFound(f"The model '{model_id}' does not exist", param="model")
        ttl = 0.0 if seconds is None else max(seconds, 0.001)
        spec = dataclasses.replace(_spec(entry, self._estimates[model_id]), ttl=ttl)
        self._feed(ev.CatalogChanged((spec,), (), self._clock.now()))

    async def sync_catalog(self, catalog: Catalog) -> tuple[list[str], list[str]]:
        """Adopt a rescanned catalog: add new models; drop vanished ones and ones whose file or
        served settings changed, unloading them first (their waiting requests get 404).
        Returns (added, removed) ids; a changed model is in both."""
        removed: list[str] = []
        updated: list[ev.ModelSpec] = []
        for model_id, old in list(self._entries.items()):
            if self._core.model(model_id) is None:
                continue  # already on its way out
            new = catalog.get(model_id)
            if new is None or _served(new) != _served(old):
                removed.append(model_id)
            elif new != old:  # only its record changed (source, mmproj, ttl, pin)
                updated.append(self._add_entry(new))
        if removed or updated:
            self._feed(ev.CatalogChanged(tuple(updated), tuple(removed), self._clock.now()))
        for model_id in removed:
            while model_id in self._entries and not self._closed:  # until the core forgot it
                await self._forgotten.wait()
        added = [entry for entry in catalog if entry.id not in self._entries]
        if added:
            specs = tuple(self._add_entry(entry) for entry in added)
            self._metrics.declare_models(entry.id for entry in added)
            self._feed(ev.CatalogChanged(specs, (), self._clock.now()))
        return [entry.id for entry in added], removed

    # ---- the event loop of the core --------------------------------------------------------

    def _feed(self, event: ev.Event) -> None:
        """Handle an event and carry out its actions (events they cause are queued)."""
        if self._closed:
            return
        self._events.append(event)
        if self._feeding:
            return
        self._feeding = True
        try:
            while self._events:
                for action in self._core.handle(self._events.popleft()):
                    self._apply(action)
        finally:
            self._feeding = False
        self._publish()
        self._arm_timer()

    def _apply(self, action: ev.Action) -> None:
        match action:
            case ev.Grant(rid, model, epoch):
                fut = self._grants.get(rid)
                if fut is None or fut.done():  # the client left in the meantime
                    self._events.append(ev.Cancelled(rid, self._clock.now()))
                else:
                    fut.set_result(self._engines[model][1])
            case ev.Done(rid, _, value):
                answer = self._answers.get(rid)
                if answer is not None and not answer.done():
                    answer.set_result(value)
            case ev.Reject():
                self._reject(action)
            case ev.StartLoad(model, epoch):
                self._spawn(self._load(model, epoch))
            case ev.StopWorker(model, epoch, reason):
                self._spawn(self._stop(model, epoch, reason))
            case ev.Drain(model, reason):
                log.info("model draining", extra={"model": model, "reason": reason})
            case ev.MarkFailed():
                self._failed(action)
            case ev.Forget(model):
                self._entries.pop(model, None)
                self._estimates.pop(model, None)
                self._forgotten.set()
                self._forgotten = asyncio.Event()

    def _reject(self, r: ev.Reject) -> None:
        error = _error(r)
        target: asyncio.Future[Any] | None = self._grants.get(r.rid) or self._answers.get(r.rid)
        if target is not None and not target.done():
            target.set_exception(error)

    def _failed(self, f: ev.MarkFailed) -> None:
        pair = self._engines.get(f.model)
        if pair is not None and pair[0] == f.epoch:
            del self._engines[f.model]
        if f.during == "serving":
            self._metrics.evictions.labels(f.model, "crashed").inc()
        log.warning("model failed", extra={
            "model": f.model, "during": f.during, "reason": f.reason, "failures": f.failures,
            "backoff_seconds": None if f.retry_at is None
            else round(f.retry_at - self._clock.now(), 1)})

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _arm_timer(self) -> None:
        when = None if self._closed else self._core.next_wakeup()
        if when == self._timer_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_at = None, when
        if when is not None:
            self._timer = self._clock.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._feed(ev.Tick(self._clock.now()))

    def _publish(self) -> None:
        m = self._metrics
        m.pool.labels("reserved").set(self._core.reserved())
        for node in self._core.budgets:
            m.node_memory.labels(node, "reserved").set(self._core.reserved(node))
        for s in self._core.models():
            m.loaded.labels(s.model_id).set(1 if s.status == "loaded" else 0)
            m.memory.labels(s.model_id, "reserved").set(s.reserved)

    # ---- effects ---------------------------------------------------------------------------

    async def _load(self, model_id: str, epoch: int) -> None:
        entry = self._entries[model_id]
        started = self._clock.now()
        try:
            engine = await self._factory(self._spec_for(entry))
        except Exception as exc:
            reason = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
            self._metrics.loads.labels(model_id, "failed").inc()
            self._feed(ev.LoadFailed(model_id, epoch, reason, self._clock.now()))
            return
        seconds = self._clock.now() - started
        measured = self._measured(model_id, engine)
        self._metrics.loads.labels(model_id, "ok").inc()
        self._metrics.load_time.labels(model_id).observe(seconds)
        log.info("model loaded", extra={"model": model_id, "pid": engine.pid,
                                         "seconds": round(seconds, 3),
                                         "measured_bytes": measured})
        self._engines[model_id] = (epoch, engine)
        self._spawn(self._watch(model_id, epoch, engine))
        self._feed(ev.LoadDone(model_id, epoch, measured, self._clock.now()))

    def _measured(self, model_id: str, engine: Engine) -> int:
        """What the worker uses: max(its buffers + the process overhead, its RSS)."""
        estimate = self._estimates[model_id]
        r = engine.report
        measured = r.model_bytes + r.kv_bytes + r.compute_bytes + estimate.overhead
        if not r.node_bytes:  # split: the RSS also maps the weights sent to the nodes
            measured = max(measured, r.rss_bytes)
        error = (estimate.total - measured) / measured if measured else 0.0
        self._metrics.memory.labels(model_id, "measured").set(measured)
        self._metrics.estimate_error.labels(model_id).set(error)
        log.info("memory reconciled", extra={
            "model": model_id, "estimate_bytes": estimate.total, "measured_bytes": measured,
            "estimate_error": round(error, 4)})
        return measured

    async def _watch(self, model_id: str, epoch: int, engine: Engine) -> None:
        reason = await engine.exited()
        self._feed(ev.WorkerExited(model_id, epoch, reason, self._clock.now()))

    async def _stop(self, model_id: str, epoch: int, reason: ev.StopReason) -> None:
        pair = self._engines.get(model_id)
        try:
            if pair is not None and pair[0] == epoch:
                await pair[1].stop()
        finally:
            if pair is not None and self._engines.get(model_id) is pair:
                del self._engines[model_id]
            self._metrics.evictions.labels(model_id, reason).inc()
            log.info("model unloaded", extra={"model": model_id, "reason": reason})
            self._feed(ev.WorkerStopped(model_id, epoch, self._clock.now()))

    # ---- lifetime --------------------------------------------------------------------------

    def start(self) -> None:
        """Arm the timers (TTLs); the driver also works without it, for tests."""
        self._arm_timer()

    async def close(self) -> None:
        self._closed = True
        self._forgotten.set()
        self._arm_timer()
        waiting: list[asyncio.Future[Any]] = [*self._grants.values(), *self._answers.values()]
        for fut in waiting:
            fut.cancel()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        engines, self._engines = list(self._engines.values()), {}
        await asyncio.gather(*(engine.stop() for _, engine in engines), return_exceptions=True)


def _served(entry: ModelEntry) -> tuple[object, ...]:
    """What a loaded worker was started with: a change means reloading."""
    return (entry.path, entry.file, entry.n_ctx, entry.parallel, entry.n_batch,
            entry.chat_template, entry.cache_type_k, entry.cache_type_v, entry.nodes,
            entry.tensor_split)


def _error(r: ev.Reject) -> errors.HaloError:
    """The one mapping of core rejections to domain errors (api/errors.py maps those)."""
    retry = r.retry_after if r.retry_after is not None else 1.0
    match r.code:
        case "not_found":
            return errors.ModelNotFound(r.message, param="model")
        case "invalid":
            return errors.InvalidRequest(r.message, param="n")
        case "queue_full":
            return errors.QueueFull(r.message, retry_after=retry)
        case "busy":
            return errors.ModelBusy(r.message, retry_after=retry)
        case "insufficient_memory":
            return errors.InsufficientMemory(r.message, param="model")
        case "load_failed":
            return errors.ModelLoadFailed(r.message, param="model")
        case "backoff":
            return errors.ModelBackingOff(r.message, param="model", retry_after=retry)

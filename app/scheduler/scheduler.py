"""The async owner of model state: the memory ledger, admission, loads, drains and TTLs.

State is mutated on the event loop only. Every admission decision comes from the pure
policy (policy.decide) over a snapshot of the ledger; this class carries decisions out
and wakes waiters whenever something changes. A load runs as a task that every request
for that model joins; requests for models already loaded never wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from app.catalog.catalog import Catalog, ModelEntry
from app.engine.client import WorkerSpec
from app.errors import InsufficientMemory, ModelBusy, ModelLoadFailed, ModelNotFound, QueueFull
from app.metrics import Metrics
from app.scheduler.engine import Engine, EngineFactory
from app.scheduler.estimate import MemoryEstimate
from app.scheduler.policy import ModelView, Status, decide

log = logging.getLogger(__name__)


@dataclass
class ModelState:
    entry: ModelEntry
    estimate: MemoryEstimate
    need: int
    slots: asyncio.Semaphore
    status: Status = "unloaded"
    reserved: int = 0
    measured: int = 0
    engine: Engine | None = None
    load_task: asyncio.Task[Engine] | None = None
    stop_task: asyncio.Task[None] | None = None
    active: int = 0
    arrivals: list[float] = field(default_factory=list)
    last_used: float = 0.0
    loaded_at: float = 0.0
    failure: str | None = None


@dataclass(eq=False)
class _Waiter:
    state: ModelState
    arrival: float
    future: asyncio.Future[Engine]


@dataclass(frozen=True)
class Limits:
    budget: int
    max_waiting: int = 64
    slot_wait: float = 60.0  # seconds a request waits for a free slot before 429
    swap_after: float = 10.0  # ping-pong guard, see policy.decide
    tick: float = 1.0  # TTL check period


class Scheduler:
    def __init__(
        self,
        catalog: Catalog,
        engine_factory: EngineFactory,
        spec_for: Callable[[ModelEntry], WorkerSpec],
        estimate_for: Callable[[ModelEntry], MemoryEstimate],
        limits: Limits,
        metrics: Metrics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._factory = engine_factory
        self._spec_for = spec_for
        self.limits = limits
        self._metrics = metrics
        self._clock = clock
        self._estimate_for = estimate_for
        self._states: dict[str, ModelState] = {}
        for entry in catalog:
            self._add(entry)
        self._waiting = 0
        self._waiters: list[_Waiter] = []
        self._dispatch_pending = False
        self._retry_handle: asyncio.TimerHandle | None = None
        self._changed = asyncio.Event()
        self._reaper: asyncio.Task[None] | None = None
        metrics.pool.labels("budget").set(limits.budget)
        self._publish()

    def _add(self, entry: ModelEntry) -> None:
        estimate = self._estimate_for(entry)
        self._states[entry.id] = ModelState(entry, estimate, estimate.total,
                                            asyncio.Semaphore(entry.parallel))
        self._metrics.memory.labels(entry.id, "estimated").set(estimate.total)

    # ---- views -------------------------------------------------------------------------

    def state(self, model_id: str) -> ModelState:
        state = self._states.get(model_id)
        if state is None:
            raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
        return state

    def states(self) -> list[ModelState]:
        for state in self._states.values():
            self._check_alive(state)
        return [self._states[key] for key in sorted(self._states)]

    @property
    def reserved(self) -> int:
        return sum(s.reserved for s in self._states.values())

    def _views(self) -> dict[str, ModelView]:
        return {
            s.entry.id: ModelView(
                model_id=s.entry.id, status=s.status, reserved=s.reserved, need=s.need,
                active=s.active, queued=len(s.arrivals), last_used=s.last_used,
                pinned=s.entry.pinned, waiting_since=min(s.arrivals, default=None),
                loaded_at=s.loaded_at,
            )
            for s in self.states()
        }

    def _check_alive(self, state: ModelState) -> None:
        if state.status in ("loaded", "draining") and state.engine and not state.engine.alive:
            log.warning("worker exited", extra={"model": state.entry.id})
            state.engine = None
            self._set(state, "failed", reserved=0)
            state.failure = "worker process exited"
            self._metrics.evictions.labels(state.entry.id, "crashed").inc()

    def _set(self, state: ModelState, status: Status, *, reserved: int | None = None) -> None:
        state.status = status
        if reserved is not None:
            state.reserved = reserved
        self._publish()
        self._notify()

    def _publish(self) -> None:
        m = self._metrics
        m.pool.labels("reserved").set(self.reserved)
        for s in self._states.values():
            m.loaded.labels(s.entry.id).set(1 if s.status == "loaded" else 0)
            m.memory.labels(s.entry.id, "reserved").set(s.reserved)

    def _notify(self) -> None:
        """Something changed: wake the waiters of admin calls and re-run admission."""
        self._changed.set()
        self._changed = asyncio.Event()
        if not self._dispatch_pending and self._waiters:
            self._dispatch_pending = True
            asyncio.get_running_loop().call_soon(self._dispatch)

    async def _wait_change(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout)

    # ---- requests ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lease(self, model_id: str) -> AsyncIterator[Engine]:
        """Hold a model (and one of its slots) for one request."""
        state = self.state(model_id)
        if self._waiting >= self.limits.max_waiting:
            raise QueueFull(f"{self._waiting} requests are already waiting; try again later",
                            retry_after=2.0)
        arrival = self._clock()
        state.arrivals.append(arrival)
        self._waiting += 1
        try:
            engine = await self._admit_with_slot(state, arrival)
        finally:
            state.arrivals.remove(arrival)
            self._waiting -= 1
            self._notify()
        state.active += 1
        try:
            yield engine
        finally:
            state.active -= 1
            state.slots.release()
            state.last_used = self._clock()
            if state.status == "draining" and state.active == 0:
                self._begin_stop(state, "memory")
            self._notify()

    async def _admit_with_slot(self, state: ModelState, arrival: float) -> Engine:
        while True:
            engine = await self._admit(state, arrival)
            try:
                await asyncio.wait_for(state.slots.acquire(), self.limits.slot_wait)
            except TimeoutError:
                raise ModelBusy(
                    f"all {state.entry.parallel} slots of '{state.entry.id}' stayed busy for "
                    f"{self.limits.slot_wait:.0f}s", retry_after=5.0) from None
            if state.status == "loaded" and state.engine is engine:
                return engine
            state.slots.release()  # drained or crashed while we waited: decide again

    async def _admit(self, state: ModelState, arrival: float) -> Engine:
        waiter = _Waiter(state, arrival, asyncio.get_running_loop().create_future())
        self._waiters.append(waiter)
        self._waiters.sort(key=lambda w: w.arrival)
        self._notify()
        try:
            return await waiter.future
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _dispatch(self) -> None:
        """Decide for every waiting request, oldest first, and carry the decisions out.

        Runs on every change. Once an older request is waiting for memory, younger ones
        may still be served or join a load, but may not start loads of their own: memory
        freed for the oldest request is not taken by a younger one.
        """
        self._dispatch_pending = False
        now = self._clock()
        blocked = False
        retry: list[float] = []
        for waiter in list(self._waiters):
            state = waiter.state
            if waiter.future.done():
                self._waiters.remove(waiter)
                continue
            decision = decide(state.entry.id, self._views(), self.limits.budget, now=now,
                              swap_after=self.limits.swap_after)
            if decision.action == "serve" and state.engine is not None:
                waiter.future.set_result(state.engine)
                self._waiters.remove(waiter)
            elif decision.action == "refuse":
                waiter.future.set_exception(InsufficientMemory(
                    decision.reason, param="model", need=state.need, budget=self.limits.budget))
                self._waiters.remove(waiter)
            elif decision.action in ("load", "wait") and not blocked:
                blocked = True
                for victim in decision.drain:
                    self._drain(self._states[victim])
                for victim in decision.evict:
                    self._begin_stop(self._states[victim], "memory")
                if decision.action == "load" and not decision.evict:
                    self._start_load(state)
                if decision.retry_at is not None:
                    retry.append(decision.retry_at)
        if retry:
            if self._retry_handle is not None:
                self._retry_handle.cancel()
            delay = max(0.0, min(retry) - now)
            self._retry_handle = asyncio.get_running_loop().call_later(delay, self._notify)

    # ---- loading and stopping ----------------------------------------------------------

    def _start_load(self, state: ModelState) -> None:
        state.failure = None
        self._set(state, "loading", reserved=state.need)
        state.load_task = asyncio.create_task(self._load(state))
        state.load_task.add_done_callback(lambda t: t.cancelled() or t.exception())

    async def _load(self, state: ModelState) -> Engine:
        model_id = state.entry.id
        started = self._clock()
        try:
            engine = await self._factory(self._spec_for(state.entry))
        except BaseException as exc:
            state.failure = str(getattr(exc, "reason", None) or exc) or type(exc).__name__
            self._set(state, "failed", reserved=0)
            self._metrics.loads.labels(model_id, "failed").inc()
            log.warning("model load failed", extra={"model": model_id, "reason": state.failure})
            if isinstance(exc, asyncio.CancelledError):
                raise
            error = ModelLoadFailed(f"model '{model_id}' failed to load: {state.failure}",
                                    param="model")
            for waiter in [w for w in self._waiters if w.state is state]:
                waiter.future.set_exception(error)
                self._waiters.remove(waiter)
            raise error from exc
        finally:
            state.load_task = None
        seconds = self._clock() - started
        self._reconcile(state, engine)
        state.engine = engine
        state.last_used = state.loaded_at = self._clock()
        self._set(state, "loaded")
        self._metrics.loads.labels(model_id, "ok").inc()
        self._metrics.load_time.labels(model_id).observe(seconds)
        log.info("model loaded", extra={"model": model_id, "pid": engine.pid,
                                         "seconds": round(seconds, 3),
                                         "reserved_bytes": state.reserved})
        return engine

    def _reconcile(self, state: ModelState, engine: Engine) -> None:
        """Ledger = max(estimate, measurement); log and export the estimate's error."""
        r = engine.report
        buffers = r.model_bytes + r.kv_bytes + r.compute_bytes
        state.measured = max(buffers + state.estimate.overhead, r.rss_bytes)
        state.need = max(state.estimate.total, state.measured)
        state.reserved = state.need
        error = (state.estimate.total - state.measured) / state.measured if state.measured else 0
        self._metrics.memory.labels(state.entry.id, "measured").set(state.measured)
        self._metrics.estimate_error.labels(state.entry.id).set(error)
        log.info("memory reconciled", extra={
            "model": state.entry.id, "estimate_bytes": state.estimate.total,
            "measured_bytes": state.measured, "estimate_error": round(error, 4)})

    def _drain(self, state: ModelState) -> None:
        if state.status != "loaded":
            return
        self._set(state, "draining")
        if state.active == 0:
            self._begin_stop(state, "memory")

    def _begin_stop(self, state: ModelState, reason: str) -> asyncio.Task[None]:
        if state.stop_task is None:
            if state.status != "draining":
                self._set(state, "draining")
            state.stop_task = asyncio.create_task(self._stop(state, reason))
        return state.stop_task

    async def _stop(self, state: ModelState, reason: str) -> None:
        try:
            engine, state.engine = state.engine, None
            if engine is not None:
                await engine.stop()
            self._metrics.evictions.labels(state.entry.id, reason).inc()
            log.info("model unloaded", extra={"model": state.entry.id, "reason": reason})
        finally:
            state.stop_task = None
            self._set(state, "unloaded", reserved=0)

    # ---- admin -------------------------------------------------------------------------

    async def load(self, model_id: str) -> Engine:
        """Load without serving (POST /models/load): admission as for a request."""
        async with self.lease(model_id) as engine:
            return engine

    async def unload(self, model_id: str, reason: str = "api") -> bool:
        """Drain the model and stop its worker. False if it was not loaded."""
        state = self.state(model_id)
        if state.load_task is not None:
            with contextlib.suppress(ModelLoadFailed):
                await asyncio.shield(state.load_task)
        if state.status not in ("loaded", "draining"):
            return False
        self._set(state, "draining")
        while state.active:
            await self._wait_change(self.limits.tick)
        if state.status == "draining":
            await self._begin_stop(state, reason)
        return True

    async def sync_catalog(self, catalog: Catalog) -> tuple[list[str], list[str]]:
        """Adopt a rescanned catalog: add new models; drop vanished ones and ones whose file or
        served settings changed, unloading them first (their waiting requests get 404).
        Returns (added, removed) ids; a changed model is in both."""
        removed = []
        for model_id, state in list(self._states.items()):
            new = catalog.get(model_id)
            if new is not None and _served(new) == _served(state.entry):
                state.entry = new  # only its record changed (source, mmproj, ttl, pin)
                continue
            removed.append(model_id)
            self._fail_waiters(state)
            await self.unload(model_id, reason="api")
            self._fail_waiters(state)
            if self._states.get(model_id) is state:
                del self._states[model_id]
        added = [entry.id for entry in catalog if entry.id not in self._states]
        for model_id in added:
            self._add(catalog.entries[model_id])
        self._metrics.declare_models(added)
        self._publish()
        self._notify()
        return added, removed

    def _fail_waiters(self, state: ModelState) -> None:
        error = ModelNotFound(f"The model '{state.entry.id}' was removed", param="model")
        for waiter in [w for w in self._waiters if w.state is state]:
            if not waiter.future.done():
                waiter.future.set_exception(error)
            self._waiters.remove(waiter)

    # ---- lifetime ----------------------------------------------------------------------

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap())

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(self.limits.tick)
            now = self._clock()
            for state in self.states():
                entry = state.entry
                if (state.status == "loaded" and not entry.pinned and entry.ttl > 0
                        and state.active == 0 and not state.arrivals
                        and now - state.last_used >= entry.ttl):
                    self._begin_stop(state, "ttl")

    async def close(self) -> None:
        if self._retry_handle is not None:
            self._retry_handle.cancel()
        for waiter in self._waiters:
            waiter.future.cancel()
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for state in self._states.values():
            if state.load_task is not None:
                state.load_task.cancel()
                with contextlib.suppress(BaseException):
                    await state.load_task
            if state.engine is not None:
                engine, state.engine = state.engine, None
                await engine.stop()
            state.status, state.reserved = "unloaded", 0


def _served(entry: ModelEntry) -> tuple[object, ...]:
    """What a loaded worker was started with: a change means reloading."""
    return (entry.path, entry.file, entry.n_ctx, entry.parallel, entry.n_batch,
            entry.chat_template, entry.cache_type_k, entry.cache_type_v)

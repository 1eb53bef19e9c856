"""The async owner of model state: loads workers on demand and leases them to requests.

All state is mutated on the event loop only. A load runs as a task that every request for
that model awaits (one load, many waiters); requests for loaded models never wait on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from app.catalog.catalog import Catalog, ModelEntry
from app.engine.client import WorkerSpec
from app.errors import ModelLoadFailed, ModelNotFound
from app.scheduler.engine import Engine, EngineFactory

log = logging.getLogger(__name__)

Status = Literal["unloaded", "loading", "loaded", "draining", "failed"]


@dataclass
class ModelState:
    entry: ModelEntry
    status: Status = "unloaded"
    engine: Engine | None = None
    load_task: asyncio.Task[Engine] | None = None
    active: int = 0
    last_used: float = 0.0
    loaded_at: float = 0.0
    failure: str | None = None
    idle: asyncio.Event = field(default_factory=asyncio.Event)


class Scheduler:
    def __init__(
        self,
        catalog: Catalog,
        engine_factory: EngineFactory,
        spec_for: Callable[[ModelEntry], WorkerSpec],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._catalog = catalog
        self._factory = engine_factory
        self._spec_for = spec_for
        self._clock = clock
        self._states = {entry.id: ModelState(entry) for entry in catalog}

    def state(self, model_id: str) -> ModelState:
        state = self._states.get(model_id)
        if state is None:
            raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
        return state

    def states(self) -> list[ModelState]:
        return [self._states[key] for key in sorted(self._states)]

    async def load(self, model_id: str) -> Engine:
        """Return the model's engine, starting (or joining) its load if needed."""
        state = self.state(model_id)
        while state.status == "draining":  # let the unload finish, then load afresh
            await state.idle.wait()
            await asyncio.sleep(0.01)
        if state.engine is not None and state.engine.alive and state.status == "loaded":
            return state.engine
        if state.engine is not None and not state.engine.alive:
            log.warning("worker died; reloading", extra={"model": model_id})
            state.engine = None
        if state.load_task is None:
            state.status = "loading"
            state.failure = None
            state.load_task = asyncio.create_task(self._load(state))
        # shield: a cancelled waiter must not cancel the load others are waiting for
        return await asyncio.shield(state.load_task)

    async def _load(self, state: ModelState) -> Engine:
        started = self._clock()
        try:
            engine = await self._factory(self._spec_for(state.entry))
        except Exception as exc:
            state.status = "failed"
            state.failure = str(getattr(exc, "reason", None) or exc)
            log.warning("model load failed", extra={"model": state.entry.id,
                                                      "reason": state.failure})
            raise ModelLoadFailed(
                f"model '{state.entry.id}' failed to load: {state.failure}", param="model"
            ) from exc
        finally:
            state.load_task = None
        state.engine = engine
        state.status = "loaded"
        state.loaded_at = state.last_used = self._clock()
        log.info("model loaded", extra={"model": state.entry.id, "pid": engine.pid,
                                         "seconds": round(self._clock() - started, 3)})
        return engine

    @contextlib.asynccontextmanager
    async def lease(self, model_id: str) -> AsyncIterator[Engine]:
        """Hold a model for one request; it is not unloaded while leased."""
        engine = await self.load(model_id)
        state = self.state(model_id)
        state.active += 1
        state.idle.clear()
        try:
            yield engine
        finally:
            state.active -= 1
            state.last_used = self._clock()
            if state.active == 0:
                state.idle.set()

    async def unload(self, model_id: str) -> bool:
        """Stop the model's worker once its running requests end. False if it was not loaded."""
        state = self.state(model_id)
        if state.load_task is not None:
            with contextlib.suppress(ModelLoadFailed):
                await asyncio.shield(state.load_task)
        if state.engine is None:
            return False
        state.status = "draining"
        if state.active:
            await state.idle.wait()
        engine, state.engine = state.engine, None
        await engine.stop()
        state.status = "unloaded"
        log.info("model unloaded", extra={"model": model_id})
        return True

    async def close(self) -> None:
        for state in self._states.values():
            if state.load_task is not None:
                state.load_task.cancel()
            if state.engine is not None:
                engine, state.engine = state.engine, None
                await engine.stop()
                state.status = "unloaded"

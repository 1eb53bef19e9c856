"""The models of a running server: pull, fit, remove, and the live catalog.

The catalog follows the models dir: `refresh()` (cheap, stat-based) runs periodically, on
`GET /v1/models` and after every pull or removal, and hands a changed catalog to the scheduler.

For other front-ends (the Ollama `/api/pull`, `/api/delete` routes), the API is:

    store = app.state.halo.store
    plan = await store.plan_pull("org/repo:Q4_K_M")    # HaloError before any download
    async for event in store.run_pull(plan):           # PullEvent: .status, .file,
        ...                                            # .completed, .total, .to_dict()
    # or both at once: `async for event in store.pull(model)`;
    # `await store.remove(model_id, force=...)`, `await store.fit(model)` (a FitReport)

The last event is `success` (the model is in the catalog by then) or `error`
(`event.detail["error"]` is the OpenAI error envelope's inner object). Closing the iterator early
cancels the download; its partial file stays and the next pull resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any

from app.catalog.catalog import Catalog, ModelEntry
from app.catalog.live import LiveCatalog
from app.catalog.models_toml import ModelsFileError
from app.catalog.shards import split_paths
from app.errors import HaloError, InsufficientMemory, InvalidRequest, ModelInUse, ModelNotFound
from app.hub.download import PullCancelled, PullEvent
from app.hub.fit import FitReport, check_fit
from app.hub.local import remove_files
from app.hub.pull import DiskFree, PullPlan, PullResult, disk_free, execute, plan_for
from app.hub.refs import Ref, Selection, parse_ref, select
from app.hub.remote import HubClient
from app.scheduler.driver import Scheduler
from app.scheduler.estimate import MemoryEstimate

log = logging.getLogger(__name__)


class ModelStore:
    def __init__(self, live: LiveCatalog, scheduler: Scheduler,
                 estimate_for: Callable[[ModelEntry], MemoryEstimate], *,
                 hub: Callable[[], HubClient] = HubClient, free: DiskFree = disk_free,
                 on_catalog: Callable[[Catalog], None] | None = None) -> None:
        self.live = live
        self._on_catalog = on_catalog
        self.scheduler = scheduler
        self._estimate_for = estimate_for
        self._hub = hub
        self.free = free  # free disk bytes at a path (a seam for tests)
        self._lock = asyncio.Lock()

    @property
    def catalog(self) -> Catalog:
        return self.live.current

    @property
    def models_dir(self) -> Path:
        return self.live.models_dir

    # ---- the live catalog -------------------------------------------------------------

    async def refresh(self) -> bool:
        """Rescan the models dir; adopt a changed catalog (removed models unloaded first)."""
        async with self._lock:
            try:
                changed = await asyncio.to_thread(self.live.refresh)
            except ModelsFileError as exc:  # keep serving the catalog we have
                log.warning("models file unusable; catalog unchanged", extra={"reason": str(exc)})
                return False
            if changed:
                if self._on_catalog is not None:
                    self._on_catalog(self.live.current)
                added, removed = await self.scheduler.sync_catalog(self.live.current)
                log.info("catalog changed", extra={"added": added, "removed": removed})
            return changed

    async def keep_fresh(self, period: float) -> None:
        """Refresh every `period` seconds until cancelled."""
        while True:
            await asyncio.sleep(period)
            try:
                await self.refresh()
            except Exception:  # a bad models.toml must not stop later refreshes
                log.exception("catalog refresh failed")

    # ---- fit --------------------------------------------------------------------------

    def _loaded(self) -> dict[str, int]:
        return {s.entry.id: s.reserved for s in self.scheduler.states() if s.reserved}

    def _fit(self, hub: HubClient, selection: Selection) -> FitReport:
        return check_fit(hub, selection, models_dir=self.models_dir,
                         models_file=self.live.models_file, defaults=self.live.defaults,
                         estimate_for=self._estimate_for, budget=self.scheduler.limits.budget,
                         loaded=self._loaded())

    def _select(self, hub: HubClient, ref: Ref) -> Selection:
        return select(ref, hub.list_files(ref.repo, ref.revision))

    async def fit(self, model: str, filename: str | None = None) -> FitReport:
        """Read only the GGUF header(s) over HTTP ranges and run the scheduler's estimate."""
        ref = parse_ref(model, filename)
        hub = self._hub()

        def work() -> FitReport:
            return self._fit(hub, self._select(hub, ref))

        return await asyncio.to_thread(work)

    # ---- pull -------------------------------------------------------------------------

    async def plan_pull(self, model: str, filename: str | None = None, *,
                        force: bool = False) -> PullPlan:
        """Everything that can refuse a pull, before any weight is downloaded: the ref, the
        hub listing, "will it fit" (refused when it never fits, unless `force`), the disk."""
        ref = parse_ref(model, filename)
        hub = self._hub()

        def work() -> PullPlan:
            selection = self._select(hub, ref)
            plan = plan_for(selection, self.models_dir, self.free)
            if plan.todo and not force:
                report = self._fit(hub, selection)
                if report.verdict == "never":
                    raise InsufficientMemory(
                        f"{report.describe()}; pull with force to download it anyway",
                        param="model", need=report.estimate.total, budget=report.budget)
            return plan

        return await asyncio.to_thread(work)

    async def run_pull(self, plan: PullPlan) -> AsyncGenerator[PullEvent, None]:
        """Download the plan's files; yields progress, then `success` or `error`."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[PullEvent | None] = asyncio.Queue()
        cancel = threading.Event()
        hub = self._hub()

        def emit(event: PullEvent) -> None:
            if event.status != "success":  # sent after the catalog has the model
                loop.call_soon_threadsafe(queue.put_nowait, event)

        def work() -> PullResult:
            try:
                return execute(hub, plan, emit, cancel)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        task = asyncio.create_task(asyncio.to_thread(work))
        try:
            while (event := await queue.get()) is not None:
                yield event
            try:
                result = await task
            except PullCancelled:
                return
            except Exception as exc:
                log.warning("pull failed", extra={"model": plan.model_id, "reason": str(exc)})
                yield error_event(exc)
                return
            await self.refresh()
            first = self.models_dir / plan.selection.variant.files[0].basename
            entry = next((e for e in self.catalog if e.path == first), None)
            yield PullEvent("success", model=entry.id if entry else plan.model_id, detail={
                "source": plan.selection.source,
                "files": [str(p.name) for p in (split_paths(entry.path) if entry else [])],
                "mmproj": entry.mmproj.name if entry and entry.mmproj else None,
                "downloaded_bytes": result.downloaded,
                "already_present": result.already_present})
        finally:
            cancel.set()
            if not task.done():
                task.add_done_callback(_consume)

    async def pull(self, model: str, filename: str | None = None, *,
                   force: bool = False) -> AsyncIterator[PullEvent]:
        plan = await self.plan_pull(model, filename, force=force)
        async for event in self.run_pull(plan):
            yield event

    # ---- remove -----------------------------------------------------------------------

    async def remove(self, model_id: str, *, force: bool = False) -> dict[str, Any]:
        """Delete a model's files (refused while loaded unless `force`, which unloads it)."""
        await self.refresh()
        entry = self.catalog.get(model_id)
        if entry is None:
            raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
        if not entry.path.resolve().is_relative_to(self.models_dir.resolve()):
            raise InvalidRequest(f"{entry.path} is outside the models dir; not deleting it",
                                 param="model")
        state = self.scheduler.state(model_id)
        if state.status in ("loading", "loaded", "draining"):
            if not force:
                raise ModelInUse(f"model '{model_id}' is {state.status}; unload it first or "
                                 "remove it with force", param="model")
            await self.scheduler.unload(model_id)
        removed = await asyncio.to_thread(remove_files, self.models_dir, entry)
        await self.refresh()
        return {"id": model_id, "object": "model", "deleted": True, "files": removed}


def error_event(exc: Exception) -> PullEvent:
    """The final event of a failed pull: `{"status": "error", "error": {message, code}}`."""
    if isinstance(exc, HaloError):
        error = {"message": exc.message, "code": exc.code, "param": exc.param}
    else:
        error = {"message": f"pull failed: {exc}", "code": "internal_error", "param": None}
    return PullEvent("error", detail={"error": error})


def _consume(task: asyncio.Task[PullResult]) -> None:
    with contextlib.suppress(BaseException):
        task.exception()

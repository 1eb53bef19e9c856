"""create_app(settings): the one place that wires halo together.

probe -> catalog -> scheduler (estimates, budget) -> metrics -> routers.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
from collections.abc import AsyncIterator, Callable

from fastapi import Depends, FastAPI

from app.api import admin as admin_api
from app.api import (
    embeddings,
    errors,
    events,
    generate,
    health,
    hub_api,
    messages,
    models,
    ollama,
    responses,
    system,
    ui,
)
from app.api import metrics as metrics_api
from app.api.auth import require_api_key
from app.api.limits import BodyLimit
from app.catalog.catalog import Catalog, Defaults, ModelEntry
from app.catalog.live import LiveCatalog
from app.cluster import Cluster, probe_nodes
from app.config import Settings
from app.engine.client import EngineClient, Speculation, WorkerSpec
from app.hardware.choice import BackendChoice
from app.hardware.nodes import NodeInfo
from app.hardware.probe import ProbeReport, probe
from app.hub.remote import HubClient
from app.metrics import Metrics
from app.scheduler.driver import Limits, Scheduler
from app.scheduler.engine import Engine, EngineFactory
from app.scheduler.estimate import MemoryEstimate, estimate, with_draft
from app.services.generation import GenerationService
from app.services.model_store import ModelStore
from app.services.response_store import ResponseStore
from app.state import AppState

log = logging.getLogger(__name__)


async def _start_worker(spec: WorkerSpec) -> Engine:
    return await EngineClient.start(spec)


def cache_types(choice: BackendChoice, entry: ModelEntry) -> tuple[str, str]:
    """The entry's KV cache (key, value) types: its own, else the backend's; f16 for a model
    split over nodes, whose devices this box's choice does not describe."""
    default_k, default_v = ("f16", "f16") if entry.nodes else choice.cache_types
    return entry.cache_type_k or default_k, entry.cache_type_v or default_v


def worker_spec(settings: Settings, choice: BackendChoice, entry: ModelEntry,
                cpu_variant: str | None = None) -> WorkerSpec:
    type_k, type_v = cache_types(choice, entry)
    return WorkerSpec(
        model_id=entry.id,
        model_path=entry.path,
        n_ctx=entry.n_ctx,
        parallel=entry.parallel,
        n_batch=entry.n_batch,
        n_threads=settings.n_threads,
        n_gpu_layers=choice.n_gpu_layers,
        use_mmap=choice.use_mmap,
        flash_attn=choice.flash_attn if choice.backend != "cpu" else None,
        cache_type_k=type_k,
        cache_type_v=type_v,
        chat_template=entry.chat_template,
        lib_path=choice.lib_path,
        cpu_variant=cpu_variant,
        env=dict(choice.env),
        embedding=entry.embedding,
        pooling=entry.pooling,
        speculative=Speculation(entry.speculative.type, entry.speculative.max,
                                entry.speculative.budget),
        draft_path=entry.draft_path,
    )


def estimate_entry(choice: BackendChoice, entry: ModelEntry) -> MemoryEstimate:
    """The entry's memory, with its draft model's when it has one (same worker)."""
    # embedding mode: a batch holds a whole input (worker: n_batch >= n_ctx)
    n_batch = max(entry.n_batch, entry.n_ctx) if entry.embedding else entry.n_batch
    fa = choice.flash_attn and choice.backend != "cpu"
    type_k, type_v = cache_types(choice, entry)
    found = estimate(entry.file, n_ctx=entry.n_ctx, parallel=entry.parallel,
                     cache_type_k=type_k, cache_type_v=type_v,
                     n_batch=n_batch, n_ubatch=n_batch, flash_attn=fa,
                     draft_outputs=0 if entry.embedding else entry.speculative.max)
    info = entry.file.info
    if entry.embedding and info.metadata.get(f"{info.architecture}.attention.causal") is False:
        found = dataclasses.replace(found, kv=0)  # an encoder keeps no KV cache
    if entry.draft_file is None:
        return found
    draft = estimate(entry.draft_file, n_ctx=entry.n_ctx, parallel=entry.parallel,
                     cache_type_k=type_k, cache_type_v=type_v,
                     n_batch=n_batch, n_ubatch=n_batch, flash_attn=fa)
    return with_draft(found, draft)


def run_probe(settings: Settings) -> ProbeReport:
    budget = int(settings.memory_budget) if settings.memory_budget is not None else None
    return probe(env=os.environ, requested=settings.backend, memory_budget=budget,
                 cpu_variant=settings.cpu_variant)


def create_app(
    settings: Settings,
    *,
    engine_factory: EngineFactory | None = None,
    probe_report: ProbeReport | None = None,
    hub: Callable[[], HubClient] | None = None,
) -> FastAPI:
    report = probe_report or run_probe(settings)
    choice = report.choice
    live = LiveCatalog(
        settings.models_dir,
        settings.models_file_path,
        Defaults(settings.default_n_ctx, settings.default_parallel, settings.default_ttl,
                 tuple(settings.nodes)),
    )
    catalog = live.current
    cluster = Cluster(report.pool.budget_bytes, probe_nodes(settings.nodes),
                      local_offload=choice.backend != "cpu")
    for problem in catalog.problems:
        log.warning("invalid model file skipped",
                    extra={"path": str(problem.path), "reason": problem.reason})
    # the probe chose the CPU variant (AMX checked once); workers load exactly that one
    cpu_variant = report.llama.cpu.variant if report.llama and report.llama.cpu else None
    if choice.lib_path and report.llama and choice.lib_path != report.llama.lib_dir:
        cpu_variant = None  # workers load another build than the probe inspected: they choose
    metrics = Metrics()
    metrics.declare_models(entry.id for entry in catalog)
    devices = ",".join(d.name for d in report.llama.devices) if report.llama else ""
    metrics.backend.labels(choice.backend, devices).set(1)
    scheduler = Scheduler(
        catalog,
        engine_factory or _start_worker,
        lambda entry: cluster.spec(worker_spec(settings, choice, entry, cpu_variant), entry),
        lambda entry: estimate_entry(choice, entry),
        Limits(budget=report.pool.budget_bytes, max_waiting=settings.max_waiting,
               node_budgets=tuple(cluster.node_budgets.items())),
        metrics,
        split_for=cluster.split,
    )
    generation = GenerationService(catalog, scheduler, metrics,
                                   commit_seconds=settings.stream_commit_seconds)

    def adopt(new: Catalog) -> None:
        state.catalog = generation.catalog = new

    store = ModelStore(live, scheduler, lambda entry: estimate_entry(choice, entry),
                       hub=hub or HubClient, on_catalog=adopt)
    state = AppState(settings=settings, catalog=catalog, scheduler=scheduler, probe=report,
                     metrics=metrics, generation=generation, store=store,
                     responses=ResponseStore(), nodes=cluster.nodes)

    def node_up(info: NodeInfo) -> None:
        state.nodes = cluster.nodes
        scheduler.set_node_budget(info.address, info.free_bytes)

    cluster.on_change.append(node_up)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("halo starting", extra={
            "models": [e.id for e in catalog], "backend": choice.backend,
            "devices": devices, "reasons": list(choice.reasons),
            "warnings": list(choice.warnings), "budget_bytes": report.pool.budget_bytes})
        scheduler.start()
        healer = asyncio.create_task(cluster.heal(settings.node_retry_seconds))
        refresher = None
        if settings.catalog_refresh_seconds > 0:
            refresher = asyncio.create_task(store.keep_fresh(settings.catalog_refresh_seconds))
        for model_id in settings.preload:
            await scheduler.load(model_id)
        yield
        for task in (refresher, healer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await scheduler.close()

    app = FastAPI(title="halo", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.halo = state
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(metrics_api.router)
    app.include_router(ui.public)  # the login form; the page's code and data need the key
    secured = [Depends(require_api_key)]
    for router in (models.router, generate.router, responses.router, messages.router,
                   embeddings.router, ollama.router, admin_api.router, hub_api.router,
                   system.router, events.router, ui.secured):
        app.include_router(router, dependencies=secured)
    return app

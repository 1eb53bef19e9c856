"""create_app(settings): the one place that wires halo together."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI

from app.api import admin, errors, generate, health, models
from app.api import metrics as metrics_api
from app.api.auth import require_api_key
from app.api.limits import BodyLimit
from app.catalog.catalog import Defaults, ModelEntry, scan
from app.config import Settings
from app.engine.client import EngineClient, WorkerSpec
from app.metrics import Metrics
from app.scheduler.engine import Engine, EngineFactory
from app.scheduler.scheduler import Scheduler
from app.state import AppState

log = logging.getLogger(__name__)


async def _start_worker(spec: WorkerSpec) -> Engine:
    return await EngineClient.start(spec)


def worker_spec(settings: Settings, entry: ModelEntry) -> WorkerSpec:
    return WorkerSpec(
        model_id=entry.id,
        model_path=entry.path,
        n_ctx=entry.n_ctx,
        parallel=entry.parallel,
        n_batch=entry.n_batch,
        n_threads=settings.n_threads,
        cache_type_k=entry.cache_type_k,
        cache_type_v=entry.cache_type_v,
        chat_template=entry.chat_template,
    )


def create_app(settings: Settings, *, engine_factory: EngineFactory | None = None) -> FastAPI:
    catalog = scan(
        settings.models_dir,
        settings.models_file_path,
        Defaults(settings.default_n_ctx, settings.default_parallel, settings.default_ttl),
    )
    for problem in catalog.problems:
        log.warning("invalid model file skipped",
                    extra={"path": str(problem.path), "reason": problem.reason})
    scheduler = Scheduler(
        catalog,
        engine_factory or _start_worker,
        lambda entry: worker_spec(settings, entry),
    )
    metrics = Metrics()
    metrics.declare_models(entry.id for entry in catalog)
    state = AppState(settings=settings, catalog=catalog, scheduler=scheduler, backend="cpu",
                     metrics=metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        log.info("halo starting", extra={"models": [e.id for e in catalog],
                                          "backend": state.backend})
        for model_id in settings.preload:
            await scheduler.load(model_id)
        yield
        await scheduler.close()

    app = FastAPI(title="halo", version="0.1.0", lifespan=lifespan, docs_url=None,
                  redoc_url=None)
    app.state.halo = state
    errors.install(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.include_router(health.router)
    app.include_router(metrics_api.router)
    secured = [Depends(require_api_key)]
    for router in (models.router, generate.router, admin.router):
        app.include_router(router, dependencies=secured)
    return app

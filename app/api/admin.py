"""Model management: POST /models/load, POST /models/unload, GET /models/running."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.api.deps import StateDep
from app.api.models import describe
from app.engine.client import EngineUnavailableError

router = APIRouter()


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str


@router.post("/models/load")
async def load(body: ModelRef, state: StateDep) -> dict[str, Any]:
    await state.scheduler.load(body.model)
    return describe(state.scheduler.state(body.model))


@router.post("/models/unload")
async def unload(body: ModelRef, state: StateDep) -> dict[str, Any]:
    was_loaded = await state.scheduler.unload(body.model)
    return {**describe(state.scheduler.state(body.model)), "unloaded": was_loaded}


@router.get("/models/running")
async def running(state: StateDep) -> dict[str, Any]:
    out = []
    now_mono, now_wall = time.monotonic(), time.time()
    for model in state.scheduler.states():
        engine = model.engine
        if engine is None or model.status not in ("loaded", "draining"):
            continue
        try:
            stats = await engine.stats()
        except EngineUnavailableError:  # the worker died since the check: report what we know
            stats = None
        report = engine.report
        idle_since = None if model.active else now_wall - (now_mono - model.last_used)
        expires = None
        if idle_since is not None and model.entry.ttl > 0 and not model.entry.pinned:
            expires = idle_since + model.entry.ttl
        out.append({
            "id": model.entry.id,
            "status": model.status,
            "pid": engine.pid,
            "backend": state.backend,
            "memory_measured_bytes": {
                "model": report.model_bytes, "kv": report.kv_bytes,
                "compute": report.compute_bytes, "rss": stats.rss_bytes if stats else None,
            },
            "slots_total": stats.slots_total if stats else report.parallel,
            "slots_busy": stats.slots_busy if stats else None,
            "requests_active": model.active,
            "requests_queued": stats.requests_queued if stats else None,
            "idle_since": idle_since,
            "expires_at": expires,
        })
    return {"object": "list", "data": out}

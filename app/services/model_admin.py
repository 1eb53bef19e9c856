"""Model admin for the HTTP layer: load, unload and what is running (no FastAPI here)."""

from __future__ import annotations

import time
from typing import Any

from app.engine.client import EngineUnavailableError
from app.scheduler.driver import ModelInfo, Scheduler


def idle_times(model: ModelInfo) -> tuple[float | None, float | None]:
    """(idle since, expires at) as wall-clock times; None while busy / when never unloaded."""
    now = time.time()
    idle_since = None if model.idle_seconds is None else now - model.idle_seconds
    return idle_since, None if model.expires_in is None else now + model.expires_in


async def running(scheduler: Scheduler, backend: str) -> list[dict[str, Any]]:
    """Loaded (and draining) models: memory reserved and measured, slots, idle times."""
    out = []
    for model in scheduler.states():
        engine = model.engine
        if engine is None or model.status not in ("loaded", "draining"):
            continue
        try:
            stats = await engine.stats()
        except EngineUnavailableError:  # the worker died since the check: report what we know
            stats = None
        report = engine.report
        idle_since, expires = idle_times(model)
        out.append({
            "id": model.entry.id,
            "status": model.status,
            "pid": engine.pid,
            "backend": backend,
            "memory_measured_bytes": {
                "model": report.model_bytes, "kv": report.kv_bytes,
                "compute": report.compute_bytes, "rss": stats.rss_bytes if stats else None,
            },
            "slots_total": stats.slots_total if stats else report.parallel,
            "slots_busy": stats.slots_busy if stats else None,
            "sequences_active": model.active,
            "requests_queued": stats.requests_queued if stats else None,
            "idle_since": idle_since,
            "expires_at": expires,
            # split over RPC nodes: per node, bytes reserved and measured (llama.cpp buffers)
            "nodes": {node: {"reserved_bytes": need,
                             "measured_bytes": dict(report.node_bytes).get(node)}
                      for node, need in model.nodes.items()},
        })
    return out

"""GET /health: liveness and readiness (no auth)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import StateDep
from app.api.models import retry_info

router = APIRouter()


@router.get("/health")
async def health(state: StateDep) -> dict[str, Any]:
    llama = state.probe.llama
    states = state.scheduler.states()
    return {
        "status": "ok",
        "backend": state.backend,
        "cpu_variant": llama.cpu.variant if llama and llama.cpu else None,
        "devices": [d.name for d in llama.devices] if llama else [],
        "models": len(state.catalog),
        "loaded": [s.entry.id for s in states if s.status == "loaded"],
        "failed": [{"model": s.entry.id, "reason": s.failure, **retry_info(s)} for s in states
                   if s.status == "failed"],
    }

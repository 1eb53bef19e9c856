"""GET /health: liveness and readiness (no auth)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api.deps import StateDep

router = APIRouter()


@router.get("/health")
async def health(state: StateDep) -> dict[str, Any]:
    llama = state.probe.llama
    return {
        "status": "ok",
        "backend": state.backend,
        "devices": [d.name for d in llama.devices] if llama else [],
        "models": len(state.catalog),
        "loaded": [s.entry.id for s in state.scheduler.states() if s.status == "loaded"],
    }

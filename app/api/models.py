"""GET /v1/models and /v1/models/{id}: the OpenAI list shape plus halo's fields."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter

from app.api.deps import StateDep
from app.scheduler.driver import ModelInfo

router = APIRouter()


def describe(state: ModelInfo) -> dict[str, Any]:
    entry = state.entry
    info = entry.file.info
    out: dict[str, Any] = {
        "id": entry.id,
        "object": "model",
        "created": int(entry.path.stat().st_mtime) if entry.path.exists() else 0,
        "owned_by": "halo",
        "status": state.status,
        "size_bytes": entry.size_bytes,
        "context_length": entry.context_length,
        "n_ctx": entry.n_ctx,
        "parallel": entry.parallel,
        "architecture": info.architecture,
        "chat_template": entry.has_chat_template,
    }
    if entry.source:
        out["source"] = entry.source
    if entry.mmproj:
        out["mmproj"] = entry.mmproj.name
    out.update(failure_info(state))
    return out


def retry_info(state: ModelInfo) -> dict[str, Any]:
    """Worker deaths in a row and, while it backs off, when it is tried again (unix time)."""
    out: dict[str, Any] = {"failures": state.state.failures}
    if state.retry_in is not None:
        out["retry_at"] = round(time.time() + state.retry_in, 3)
    return out


def failure_info(state: ModelInfo) -> dict[str, Any]:
    """Why a model failed, how often in a row, and when it is tried again."""
    if state.failure is None:
        return {}
    return {"failure": state.failure, **retry_info(state)}


@router.get("/v1/models")
async def list_models(state: StateDep) -> dict[str, Any]:
    await state.store.refresh()  # cheap when nothing changed (a stat per file)
    return {"object": "list", "data": [describe(s) for s in state.scheduler.states()]}


@router.get("/v1/models/{model_id:path}")
async def get_model(model_id: str, state: StateDep) -> dict[str, Any]:
    await state.store.refresh()
    return describe(state.scheduler.state(model_id))

"""Model management: POST /models/load, POST /models/unload, GET /models/running."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from app.api.deps import StateDep
from app.api.models import describe
from app.services import model_admin

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
    return {"object": "list", "data": await model_admin.running(state.scheduler, state.backend)}

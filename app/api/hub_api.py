"""Model admin over HTTP: POST /models/pull (SSE progress), POST /models/fit, DELETE /models/{id}.

A pull is checked before the first byte (repo and variant exist, it can fit, the disk has room):
those refusals are plain HTTP errors. Then each progress event is one SSE `data:` line
(`{"status", "file", "completed", "total"}`), and the last is `{"status": "success", "model": id,
...}` or `{"status": "error", "error": {...}}`, followed by `data: [DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.deps import StateDep
from app.hub.pull import PullPlan
from app.services.model_store import ModelStore

router = APIRouter()


class PullBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str  # "org/repo[:QUANT]"
    filename: str | None = None  # or one file of the repo
    force: bool = False  # pull even when it can never fit
    stream: bool = True


class FitBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    filename: str | None = None


@router.post("/models/pull", response_model=None)
async def pull(body: PullBody, state: StateDep) -> Response:
    store = state.store
    plan = await store.plan_pull(body.model, body.filename, force=body.force)
    if not body.stream:
        last: dict[str, Any] = {}
        async for event in store.run_pull(plan):
            last = event.to_dict()
        status = 200 if last.get("status") == "success" else 502
        return JSONResponse(last, status_code=status)
    return EventSourceResponse(
        _events(store, plan), ping=state.settings.sse_ping_seconds, sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(store: ModelStore, plan: PullPlan) -> AsyncIterator[str]:
    events = store.run_pull(plan)
    try:
        async for event in events:
            yield json.dumps(event.to_dict(), separators=(",", ":"))
        yield "[DONE]"
    finally:
        await events.aclose()  # a client gone mid-pull cancels it (the partial file stays)


@router.post("/models/fit")
async def fit(body: FitBody, state: StateDep) -> dict[str, Any]:
    report = await state.store.fit(body.model, body.filename)
    return report.to_dict()


@router.delete("/models/{model_id:path}")
async def delete(model_id: str, state: StateDep, force: bool = False) -> dict[str, Any]:
    return await state.store.remove(model_id, force=force)

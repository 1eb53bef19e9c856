"""GET /events: the live state the web page draws, pushed as SSE twice a second.

Each event is one JSON snapshot: the memory pool as /system reports it, every catalog model
with its status, slots, idle time and live rates, and the last finished requests. Built from
the scheduler's state and the LiveStats that the request trackers feed (never from /metrics).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import APIRouter
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api import system
from app.api.deps import StateDep
from app.api.models import describe
from app.state import AppState

router = APIRouter()

PERIOD = 0.5  # seconds between snapshots


def model_rows(state: AppState) -> list[dict[str, Any]]:
    live = state.metrics.live
    rows = []
    for s in state.scheduler.states():
        row = describe(s)
        row.update({
            "slots_busy": s.active, "requests_queued": s.state.waiting,
            "idle_seconds": s.idle_seconds, "ttl_seconds": s.entry.ttl,
            "pinned": s.entry.pinned, "expires_in_seconds": s.expires_in,
            "retry_in_seconds": s.retry_in, "live": live.model(s.entry.id),
        })
        rows.append(row)
    return rows


async def snapshot(state: AppState) -> dict[str, Any]:
    await state.store.refresh()  # the catalog is live (a stat per file when nothing changed)
    report = await system.system(state)
    report.pop("probe", None)  # static: the page reads it once from /system
    return {"time": time.time(), "system": report, "models": model_rows(state),
            "recent": state.metrics.live.recent()}


@router.get("/events", response_model=None)
async def events(state: StateDep) -> EventSourceResponse:
    shutdown = anyio.Event()  # set by sse-starlette when the server stops: end the stream

    async def stream() -> AsyncIterator[str]:
        while not shutdown.is_set():
            payload = await snapshot(state)
            yield json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
            with anyio.move_on_after(PERIOD):
                await shutdown.wait()

    return EventSourceResponse(
        stream(), sep="\n", ping=state.settings.sse_ping_seconds,
        shutdown_event=shutdown, shutdown_grace_period=PERIOD + 1,
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

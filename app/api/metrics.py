"""GET /metrics: Prometheus text format of this app's registry."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from app.api.auth import check_api_key
from app.api.deps import StateDep

router = APIRouter()


@router.get("/metrics")
async def metrics(request: Request, state: StateDep) -> Response:
    if state.settings.metrics_require_key:
        check_api_key(state.settings.api_keys, request.headers.get("authorization"))
    return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

"""SSE responses of named events (Responses API, Anthropic Messages) and NDJSON (Ollama)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import StreamingResponse
from sse_starlette import EventSourceResponse, ServerSentEvent

_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def named_event_stream(body: AsyncIterator[ServerSentEvent],
                       ping_seconds: float) -> EventSourceResponse:
    """`event: <name>` + `data: <json>` frames, with keep-alive comments between them."""
    return EventSourceResponse(
        body,
        ping=ping_seconds,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
        headers=_HEADERS,
    )


def ndjson_stream(body: AsyncIterator[str]) -> StreamingResponse:
    """One JSON object per line (Ollama's streaming format)."""
    return StreamingResponse(body, media_type="application/x-ndjson", headers=_HEADERS)

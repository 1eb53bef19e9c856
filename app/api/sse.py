"""Write a generation as bytes: SSE stream or one JSON body (no request logic here).

Failures before the first event are HTTP errors (raised to the error table); after
the stream has started they are sent as `data: {"error": ...}` then `data: [DONE]`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.errors import error_body
from app.errors import HaloError
from app.protocol.openai_prepare import Prepared
from app.protocol.openai_reply import OpenAIRenderer
from app.services.generation import Generation, GenerationService


def _data(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def event_stream(body: AsyncIterator[str], ping_seconds: float) -> EventSourceResponse:
    """An SSE response of `body`'s data lines, with keep-alive comments."""
    return EventSourceResponse(
        body,
        ping=ping_seconds,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def disconnected(request: Request) -> None:
    """Returns when the client has gone away."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


async def respond(request: Request, service: GenerationService, prepared: Prepared) -> Response:
    if not prepared.stream:
        reply = await service.collect(prepared.job, cancel_when=disconnected(request))
        if reply is None:
            return Response(status_code=499)
        return JSONResponse(prepared.renderer.response(reply))
    generation = await service.stream(prepared.job)
    ping = request.app.state.halo.settings.sse_ping_seconds
    return event_stream(_stream(generation, prepared.renderer), ping)


async def _stream(generation: Generation, renderer: OpenAIRenderer) -> AsyncIterator[str]:
    try:
        for chunk in renderer.opening():
            yield _data(chunk)
        async for event in generation:
            for chunk in renderer.render(event):
                yield _data(chunk)
        yield "[DONE]"
    except HaloError as exc:
        yield _data(error_body(exc))
        yield "[DONE]"
    finally:
        await generation.close()

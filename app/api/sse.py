"""Serve a Generation as an OpenAI response: SSE stream or one JSON body.

Failures before the first event are HTTP errors (raised to the error table); after
the stream has started they are sent as `data: {"error": ...}` then `data: [DONE]`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import EventSourceResponse, ServerSentEvent

from app.api.errors import error_body
from app.engine.client import Accepted, ChoiceEnd, Finished, TextDelta
from app.errors import HaloError
from app.services.generation import Generation
from app.services.openai_format import Collected, Format
from app.services.prepare import Prepared
from app.state import AppState


def _data(payload: dict[str, Any]) -> str:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


async def respond(request: Request, prepared: Prepared) -> Response:
    state: AppState = request.app.state.halo
    tracker = state.metrics.track(prepared.entry.id)
    generation = Generation(state.scheduler, prepared.entry.id, prepared.request, tracker)
    if not prepared.stream:
        return await _collect(request, generation, prepared.format)
    try:
        await generation.first(timeout=state.settings.stream_commit_seconds)
    except BaseException:
        await generation.close()
        raise
    return EventSourceResponse(
        _stream(generation, prepared.format),
        ping=state.settings.sse_ping_seconds,
        sep="\n",
        ping_message_factory=lambda: ServerSentEvent(comment="keep-alive"),
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(generation: Generation, fmt: Format) -> AsyncIterator[str]:
    try:
        for chunk in fmt.opening():
            yield _data(chunk)
        async for event in generation.events():
            if isinstance(event, Accepted):
                fmt.accepted(event)
            elif isinstance(event, TextDelta):
                if event.text:
                    for chunk in fmt.delta(event):
                        yield _data(chunk)
            elif isinstance(event, ChoiceEnd):
                for chunk in fmt.end(event):
                    yield _data(chunk)
            elif isinstance(event, Finished):
                usage = fmt.usage_chunk(event)
                if usage is not None:
                    yield _data(usage)
        yield "[DONE]"
    except HaloError as exc:
        yield _data(error_body(exc))
        yield "[DONE]"
    finally:
        await generation.close()


async def _collect(request: Request, generation: Generation, fmt: Format) -> Response:
    got = Collected()

    async def consume() -> None:
        async for event in generation.events():
            got.add(event)

    consumer = asyncio.create_task(consume())
    watcher = asyncio.create_task(_disconnected(request))
    try:
        await asyncio.wait({consumer, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not consumer.done():  # the client went away: stop generating
            consumer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        await generation.close()
    if consumer.cancelled():
        return Response(status_code=499)
    consumer.result()  # re-raises a HaloError for the error table
    return JSONResponse(fmt.response(got))


async def _disconnected(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return

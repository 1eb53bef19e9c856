"""Anthropic Messages API: POST /v1/messages (stream or not) and /v1/messages/count_tokens.

Errors use Anthropic's envelope (see api/errors.py, which picks it by path); an error after
the stream started is an `error` event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from app.api.deps import StateDep
from app.api.errors import anthropic_envelope, anthropic_status, status_of
from app.api.sse import disconnected
from app.api.streams import named_event_stream
from app.errors import HaloError
from app.protocol.anthropic import messages_input as convert
from app.protocol.anthropic.messages import CountTokensRequest, MessagesRequest
from app.protocol.anthropic.messages_reply import MessagesRenderer
from app.protocol.chat_job import ChatTurn, chat_job
from app.services.generation import Generation

router = APIRouter()


def _turn(body: MessagesRequest | CountTokensRequest) -> ChatTurn:
    tools = convert.chat_tools(body.tools)
    choice = body.tool_choice
    turn = ChatTurn(model=body.model, messages=convert.chat_messages(body.messages, body.system),
                    tools=tools, tool_choice=convert.chat_tool_choice(choice, tools),
                    one_call=bool(choice and choice.disable_parallel_tool_use))
    if isinstance(body, MessagesRequest):
        turn.max_tokens = body.max_tokens  # the engine caps it at the context left
        turn.temperature, turn.top_p, turn.top_k = body.temperature, body.top_p, body.top_k
        turn.stop = list(body.stop_sequences or [])
    return turn


def _sse(name: str, data: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(data, separators=(",", ":"), ensure_ascii=False),
                           event=name)


@router.post("/v1/messages", response_model=None)
async def create(body: MessagesRequest, request: Request, state: StateDep) -> Response:
    job = chat_job(state.generation, _turn(body))
    renderer = MessagesRenderer(body.model, tuple(body.stop_sequences or ()))
    if not body.stream:
        reply = await state.generation.collect(job, cancel_when=disconnected(request))
        if reply is None:
            return Response(status_code=499)
        return JSONResponse(renderer.message(reply))
    generation = await state.generation.stream(job)
    return named_event_stream(_stream(generation, renderer), state.settings.sse_ping_seconds)


async def _stream(generation: Generation,
                  renderer: MessagesRenderer) -> AsyncIterator[ServerSentEvent]:
    try:
        async for event in generation:
            for name, data in renderer.render(event):
                yield _sse(name, data)
    except HaloError as exc:
        status, _ = status_of(exc)
        yield _sse("error", anthropic_envelope(anthropic_status(status), exc.message))
    finally:
        await generation.close()


@router.post("/v1/messages/count_tokens")
async def count_tokens(body: CountTokensRequest, request: Request,
                       state: StateDep) -> dict[str, Any]:
    turn = _turn(body)
    turn.max_tokens = 0  # render and tokenize, generate nothing
    reply = await state.generation.collect(chat_job(state.generation, turn),
                                           cancel_when=disconnected(request))
    return {"input_tokens": reply.prompt_tokens if reply is not None else 0}

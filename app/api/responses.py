"""OpenAI Responses API: POST /v1/responses (stream or not), GET/DELETE, input_tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sse_starlette import ServerSentEvent

from app.api.deps import StateDep
from app.api.sse import disconnected
from app.api.streams import named_event_stream
from app.errors import HaloError, InvalidRequest, NotFound
from app.protocol.chat_job import chat_job
from app.protocol.openai import responses_turn
from app.protocol.openai.responses import InputTokensRequest, ResponsesRequest
from app.protocol.openai.responses_reply import ResponsesRenderer
from app.services.events import Reply
from app.services.generation import Generation
from app.state import AppState

router = APIRouter()


def _history(state: AppState, body: ResponsesRequest) -> list[dict[str, Any]]:
    if body.previous_response_id is None:
        return []
    stored = state.responses.get(body.previous_response_id)
    if stored is None:
        raise InvalidRequest(f"Previous response with id '{body.previous_response_id}' not "
                             "found (responses are kept in memory for a limited time)",
                             param="previous_response_id")
    return stored.messages


def _data(event: dict[str, Any]) -> ServerSentEvent:
    return ServerSentEvent(json.dumps(event, separators=(",", ":"), ensure_ascii=False),
                           event=str(event["type"]))


@router.post("/v1/responses", response_model=None)
async def create(body: ResponsesRequest, request: Request, state: StateDep) -> Response:
    turns = responses_turn.conversation(body, _history(state, body))
    job = chat_job(state.generation, responses_turn.turn(body, turns))
    renderer = ResponsesRenderer(responses_turn.shape(body, job.model.id))
    store = body.store is not False

    def keep(reply: Reply, response: dict[str, Any]) -> None:
        if store:
            state.responses.put(response, [*turns, responses_turn.reply_turn(reply)],
                                job.model.id)

    if not body.stream:
        reply = await state.generation.collect(job, cancel_when=disconnected(request))
        if reply is None:
            return Response(status_code=499)
        response = renderer.response(reply)
        keep(reply, response)
        return JSONResponse(response)
    generation = await state.generation.stream(job)
    return named_event_stream(_stream(generation, renderer, keep),
                              state.settings.sse_ping_seconds)


async def _stream(generation: Generation, renderer: ResponsesRenderer,
                  keep: Any) -> AsyncIterator[ServerSentEvent]:
    try:
        for event in renderer.opening():
            yield _data(event)
        async for reply_event in generation:
            for event in renderer.render(reply_event):
                if event["type"] in ("response.completed", "response.incomplete"):
                    keep(renderer.reply, event["response"])
                yield _data(event)
    except HaloError as exc:
        yield _data(renderer.error(exc.code, exc.message, exc.param))
        failed = renderer.response(None, "failed")
        failed["error"] = {"code": exc.code, "message": exc.message}
        yield _data(renderer.event("response.failed", response=failed))
    finally:
        await generation.close()


@router.post("/v1/responses/input_tokens")
async def input_tokens(body: InputTokensRequest, request: Request,
                       state: StateDep) -> dict[str, Any]:
    turns = responses_turn.conversation(body, _history(state, body))
    turn = responses_turn.turn(body, turns)
    turn.max_tokens = 0  # render and tokenize, generate nothing
    reply = await state.generation.collect(chat_job(state.generation, turn),
                                           cancel_when=disconnected(request))
    return {"object": "response.input_tokens",
            "input_tokens": reply.prompt_tokens if reply is not None else 0}


@router.get("/v1/responses/{response_id}")
async def get(response_id: str, state: StateDep) -> dict[str, Any]:
    stored = state.responses.get(response_id)
    if stored is None:
        raise NotFound(f"No response with id '{response_id}' (responses are kept in memory "
                       "for a limited time)", param="response_id")
    return stored.response


@router.delete("/v1/responses/{response_id}")
async def delete(response_id: str, state: StateDep) -> dict[str, Any]:
    if not state.responses.delete(response_id):
        raise NotFound(f"No response with id '{response_id}'", param="response_id")
    return {"id": response_id, "object": "response", "deleted": True}

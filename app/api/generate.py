"""POST /v1/chat/completions and /v1/completions."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.deps import StateDep
from app.api.sse import respond
from app.protocol.chat import ChatCompletionRequest
from app.protocol.completions import CompletionRequest
from app.protocol.openai_prepare import prepare_chat, prepare_completion

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, state: StateDep
) -> Response:
    return await respond(request, state.generation, prepare_chat(state.generation, body))


@router.post("/v1/completions", response_model=None)
async def completions(body: CompletionRequest, request: Request, state: StateDep) -> Response:
    return await respond(request, state.generation, prepare_completion(state.generation, body))

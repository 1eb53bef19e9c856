"""Ollama's API on halo's port (`/api/*`); errors are Ollama's `{"error": "..."}`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.api.deps import StateDep
from app.api.embeddings import ServiceDep
from app.api.sse import disconnected
from app.api.streams import ndjson_stream
from app.catalog.catalog import ModelEntry
from app.errors import HaloError, ModelNotFound
from app.hub.download import PullEvent
from app.protocol.chat_job import ChatTurn, chat_job
from app.protocol.ollama import models as describe
from app.protocol.ollama import turn as ollama_turn
from app.protocol.ollama.reply import OllamaRenderer
from app.protocol.ollama.schemas import (
    ChatRequest,
    EmbedRequest,
    GenerateRequest,
    LegacyEmbeddingsRequest,
    ModelRequest,
    PullRequest,
)
from app.services.embeddings import check_dimensions, embedding_model, floats
from app.services.model_admin import idle_times
from app.state import AppState

router = APIRouter()

# the Ollama API version whose shapes these routes follow
OLLAMA_VERSION = "0.13.0"


def entry_for(state: AppState, name: str) -> ModelEntry:
    model_id = describe.resolve_name(name, set(state.catalog.entries))
    entry = state.catalog.get(model_id)
    if entry is None:
        raise ModelNotFound(f"model '{name}' not found", param="model")
    return entry


@router.get("/api/version")
async def version() -> dict[str, str]:
    return {"version": OLLAMA_VERSION}


@router.get("/api/tags")
async def tags(state: StateDep) -> dict[str, Any]:
    await state.store.refresh()  # cheap when nothing changed
    return {"models": [describe.tag(entry) for entry in state.catalog]}


@router.get("/api/ps")
async def ps(state: StateDep) -> dict[str, Any]:
    out = []
    for model in state.scheduler.states():
        if model.engine is None or model.status not in ("loaded", "draining"):
            continue
        _, expires = idle_times(model)
        out.append(describe.running(model.entry, model.reserved, expires))
    return {"models": out}


@router.post("/api/show")
async def show(body: ModelRequest, state: StateDep) -> dict[str, Any]:
    return describe.show(entry_for(state, body.model_id))


@router.post("/api/embed")
async def embed(body: EmbedRequest, state: StateDep, service: ServiceDep) -> dict[str, Any]:
    started = time.perf_counter()
    entry = embedding_model(state.catalog, entry_for(state, body.model).id)
    check_dimensions(entry, body.dimensions)
    inputs = body.inputs
    if not inputs:  # Ollama: an empty input only loads the model
        await state.scheduler.load(entry.id)
        return {"model": body.model, "embeddings": []}
    result = await service.embed(entry, inputs, truncate=body.truncate)
    return {"model": body.model, "embeddings": [floats(v) for v in result.vectors],
            "total_duration": int((time.perf_counter() - started) * 1e9),
            "load_duration": 0, "prompt_eval_count": result.prompt_tokens}


@router.post("/api/embeddings")
async def embeddings(body: LegacyEmbeddingsRequest, state: StateDep,
                     service: ServiceDep) -> dict[str, Any]:
    entry = embedding_model(state.catalog, entry_for(state, body.model).id)
    result = await service.embed(entry, [body.prompt], truncate=True)
    return {"embedding": floats(result.vectors[0])}


# ---- generation ------------------------------------------------------------------------


def _line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n"


async def _after(state: AppState, model_id: str, keep_alive: float | None) -> None:
    """Ollama's keep_alive: 0 unloads after the request, N seconds sets the idle TTL,
    negative keeps the model loaded."""
    if keep_alive is None:
        return
    if keep_alive == 0:
        await state.scheduler.unload(model_id, "api")
    else:
        state.scheduler.set_ttl(model_id, None if keep_alive < 0 else keep_alive)


async def _load_only(state: AppState, entry: ModelEntry, name: str, chat: bool,
                     keep_alive: float | None) -> dict[str, Any]:
    """An empty request loads (or, with keep_alive 0, unloads) the model (Ollama's way)."""
    if keep_alive == 0:
        await state.scheduler.unload(entry.id, "api")
        reason = "unload"
    else:
        await state.scheduler.load(entry.id)
        await _after(state, entry.id, keep_alive)
        reason = "load"
    out: dict[str, Any] = {"model": name, "created_at": describe.modified_at(entry)}
    if chat:
        out["message"] = {"role": "assistant", "content": ""}
    else:
        out["response"] = ""
    return {**out, "done_reason": reason, "done": True}


async def _run(request: Request, state: AppState, name: str, turn: ChatTurn, chat: bool,
               stream: bool, keep_alive: float | None) -> Response:
    job = chat_job(state.generation, turn)
    renderer = OllamaRenderer(name, chat=chat)
    if not stream:
        reply = await state.generation.collect(job, cancel_when=disconnected(request))
        await _after(state, job.model.id, keep_alive)
        if reply is None:
            return Response(status_code=499)
        return JSONResponse(renderer.final(reply, whole=True))
    generation = await state.generation.stream(job)

    async def lines() -> AsyncIterator[str]:
        try:
            async for event in generation:
                for obj in renderer.render(event):
                    yield _line(obj)
        except HaloError as exc:
            yield _line({"error": exc.message})
        finally:
            await generation.close()
            await _after(state, job.model.id, keep_alive)

    return ndjson_stream(lines())


@router.post("/api/chat", response_model=None)
async def chat(body: ChatRequest, request: Request, state: StateDep) -> Response:
    entry = entry_for(state, body.model)
    if not body.messages:
        return JSONResponse(await _load_only(state, entry, body.model, True, body.keep_alive_s))
    return await _run(request, state, body.model, ollama_turn.chat_turn(body, entry.id),
                      True, body.stream, body.keep_alive_s)


@router.post("/api/generate", response_model=None)
async def generate(body: GenerateRequest, request: Request, state: StateDep) -> Response:
    entry = entry_for(state, body.model)
    if not body.prompt and not body.raw:
        return JSONResponse(await _load_only(state, entry, body.model, False,
                                             body.keep_alive_s))
    return await _run(request, state, body.model, ollama_turn.generate_turn(body, entry.id),
                      False, body.stream, body.keep_alive_s)


# ---- pull / delete (the model store, issue 11) -----------------------------------------

_HUB_PREFIXES = ("hf.co/", "huggingface.co/", "https://huggingface.co/")


def hub_ref(name: str) -> str:
    """Ollama pulls Hugging Face models as `hf.co/org/repo:QUANT`; halo takes `org/repo:QUANT`."""
    for prefix in _HUB_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _pull_line(event: PullEvent) -> dict[str, Any]:
    if event.status == "error":
        detail = event.detail or {}
        error = detail.get("error")
        message = error.get("message") if isinstance(error, dict) else None
        return {"error": str(message or "pull failed")}
    if event.status == "success":
        return {"status": "success"}
    out: dict[str, Any] = {"status": event.status if event.file is None
                           else f"{event.status} {event.file}"}
    if event.file is not None:
        out.update(digest=event.file, total=event.total, completed=event.completed)
    return out


@router.post("/api/pull", response_model=None)
async def pull(body: PullRequest, state: StateDep) -> Response:
    plan = await state.store.plan_pull(hub_ref(body.model_id))  # refusals: plain HTTP errors
    events = state.store.run_pull(plan)
    if not body.stream:
        last: dict[str, Any] = {"error": "pull ended without a result"}
        async for event in events:
            last = _pull_line(event)
        return JSONResponse(last, status_code=200 if "error" not in last else 502)

    async def lines() -> AsyncIterator[str]:
        try:
            async for event in events:
                yield _line(_pull_line(event))
        finally:
            await events.aclose()  # a client gone mid-pull cancels it (the partial file stays)

    return ndjson_stream(lines())


@router.delete("/api/delete")
async def delete(body: ModelRequest, state: StateDep) -> Response:
    await state.store.refresh()
    entry = entry_for(state, body.model_id)
    await state.store.remove(entry.id)
    return Response(status_code=200)

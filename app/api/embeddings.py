"""POST /v1/embeddings and /v1/rerank (OpenAI family)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from app.api.deps import StateDep
from app.protocol.openai.embeddings import (
    EmbeddingRequest,
    RerankRequest,
    embedding_response,
    rerank_response,
)
from app.services.embeddings import EmbeddingService, check_dimensions, embedding_model

router = APIRouter()


async def embedding_service(state: StateDep) -> EmbeddingService:
    return EmbeddingService(state.catalog, state.scheduler, state.metrics)


ServiceDep = Annotated[EmbeddingService, Depends(embedding_service)]


@router.post("/v1/embeddings")
async def embeddings(body: EmbeddingRequest, service: ServiceDep) -> dict[str, Any]:
    entry = embedding_model(service.catalog, body.model)
    check_dimensions(entry, body.dimensions)
    result = await service.embed(entry, body.inputs)
    return embedding_response(entry.id, result, body.encoding_format)


@router.post("/v1/rerank")
async def rerank(body: RerankRequest, service: ServiceDep) -> dict[str, Any]:
    entry = embedding_model(service.catalog, body.model)
    scores, tokens = await service.rerank(entry, body.query, body.texts)
    return rerank_response(entry.id, body, scores, tokens)




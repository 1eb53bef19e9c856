"""The embedding service: validate inputs, lease an embedding model, get its vectors.

Used by every protocol that embeds (OpenAI /v1/embeddings and /v1/rerank, Ollama
/api/embed). Embedding models go through the scheduler like any model: they are in the
memory ledger, loaded on demand, evicted by the same rules.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from array import array
from dataclasses import dataclass

from app.catalog.catalog import Catalog, ModelEntry
from app.engine.client import Accepted, EmbedRequest, Failed
from app.errors import HaloError, InvalidRequest, ModelNotFound, engine_failure
from app.metrics import Metrics
from app.scheduler.driver import Scheduler


@dataclass(frozen=True)
class EmbedResult:
    vectors: tuple[bytes, ...]  # float32 little-endian, one per input, in input order
    prompt_tokens: int
    truncated: int = 0


def floats(vector: bytes) -> list[float]:
    values = array("f")
    values.frombytes(vector)
    return values.tolist()


def cosine(a: list[float], b: list[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    na, nb = math.sqrt(math.fsum(x * x for x in a)), math.sqrt(math.fsum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0


def embedding_model(catalog: Catalog, model_id: str) -> ModelEntry:
    entry = catalog.get(model_id)
    if entry is None:
        raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
    if not entry.embedding:
        raise InvalidRequest(
            f"model '{model_id}' is not an embedding model (set embedding = true for it in "
            "models.toml to serve it in embedding mode)", param="model")
    return entry


def check_dimensions(entry: ModelEntry, dimensions: int | None) -> None:
    size = entry.file.info.embedding_length
    if dimensions is not None and dimensions != size:
        raise InvalidRequest(
            f"dimensions={dimensions} is not supported: model '{entry.id}' produces "
            f"{size}-dimensional vectors and cannot shorten them", param="dimensions")


def _check_text(inputs: list[str | list[int]], vocab: int | None) -> None:
    for i, item in enumerate(inputs):
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidRequest(f"input[{i}] is not valid Unicode text ({exc.reason})",
                                     param="input") from None
        elif vocab is not None and any(t >= vocab for t in item):
            raise InvalidRequest(f"input[{i}] has a token id outside the vocabulary "
                                 f"(size {vocab})", param="input")


def _error(failed: Failed) -> HaloError:
    details = dict(failed.details)
    details.setdefault("param", "input")
    return engine_failure(failed.code, failed.message, details)


class EmbeddingService:
    def __init__(self, catalog: Catalog, scheduler: Scheduler, metrics: Metrics) -> None:
        self.catalog = catalog
        self.scheduler = scheduler
        self.metrics = metrics

    async def embed(self, entry: ModelEntry, inputs: list[str | list[int]], *,
                    truncate: bool = False) -> EmbedResult:
        """Vectors of `inputs` (normalised), in order; raises a HaloError on refusal."""
        if entry.pooling == "rank":
            raise InvalidRequest(f"model '{entry.id}' is a reranker (rank pooling): use "
                                 "/v1/rerank", param="model")
        _check_text(inputs, entry.file.info.vocab_size)
        request = EmbedRequest(uuid.uuid4().hex, inputs, truncate=truncate)
        tracker = self.metrics.track(entry.id)
        status = "internal_error"
        try:
            async with self.scheduler.lease(entry.id) as engine:
                tracker.on_event(Accepted(0, 0))
                got = await engine.embed(request)
            if isinstance(got, Failed):
                error = _error(got)
                status = error.code
                raise error
            status = "ok"
            self.metrics.prompt_tokens.labels(entry.id).inc(got.prompt_tokens)
            return EmbedResult(got.vectors, got.prompt_tokens, got.truncated)
        except HaloError as exc:
            status = exc.code
            raise
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        finally:
            tracker.close(status)

    async def rerank(self, entry: ModelEntry, query: str,
                     documents: list[str]) -> tuple[list[float], int]:
        """Relevance of each document to `query`: cosine similarity of their embeddings."""
        if entry.pooling == "rank":
            raise InvalidRequest(f"model '{entry.id}' is a cross-encoder reranker (rank "
                                 "pooling), which this server does not run yet; use an "
                                 "embedding model", param="model")
        result = await self.embed(entry, [query, *documents])
        vectors = [floats(v) for v in result.vectors]
        return [cosine(vectors[0], v) for v in vectors[1:]], result.prompt_tokens

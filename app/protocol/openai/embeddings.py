"""OpenAI `/v1/embeddings` and the common `/v1/rerank` shape (llama-server, Jina, Cohere).

Requests are permissive (unknown fields are accepted and ignored); replies are built from
the embedding service's result, in input order.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from app.services.embeddings import EmbedResult, floats

MAX_INPUTS = 2048

Text = Annotated[str, StringConstraints(min_length=1)]
TokenIds = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]


class EmbeddingRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    input: (Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS)]
            | TokenIds | Annotated[list[TokenIds], Field(min_length=1, max_length=MAX_INPUTS)])
    encoding_format: Literal["float", "base64"] | None = "float"
    dimensions: int | None = Field(None, ge=1)
    user: str | None = None

    @property
    def inputs(self) -> list[str | list[int]]:
        """One list of inputs: a string, or a token array, each."""
        value = self.input
        if isinstance(value, str):
            return [value]
        if value and isinstance(value[0], int):
            return [list(value)]
        return list(value)  # type: ignore[arg-type]


def embedding_response(model: str, result: EmbedResult, encoding: str | None) -> dict[str, Any]:
    data = []
    for i, vector in enumerate(result.vectors):
        value: Any = (base64.b64encode(vector).decode("ascii") if encoding == "base64"
                      else floats(vector))
        data.append({"object": "embedding", "index": i, "embedding": value})
    return {"object": "list", "data": data, "model": model,
            "usage": {"prompt_tokens": result.prompt_tokens,
                      "total_tokens": result.prompt_tokens}}


class RerankDocument(BaseModel):
    model_config = ConfigDict(extra="allow")

    text: Text


class RerankRequest(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    query: Text
    documents: Annotated[list[Text | RerankDocument], Field(min_length=1, max_length=MAX_INPUTS)]
    top_n: int | None = Field(None, ge=1)
    return_documents: bool = False

    @property
    def texts(self) -> list[str]:
        return [d if isinstance(d, str) else d.text for d in self.documents]


def rerank_response(model: str, body: RerankRequest, scores: list[float],
                    prompt_tokens: int) -> dict[str, Any]:
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    if body.top_n is not None:
        order = order[:body.top_n]
    texts = body.texts
    results = []
    for i in order:
        item: dict[str, Any] = {"index": i, "relevance_score": scores[i]}
        if body.return_documents:
            item["document"] = {"text": texts[i]}
        results.append(item)
    return {"object": "list", "model": model, "results": results,
            "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}}

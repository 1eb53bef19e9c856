"""/v1/embeddings, /v1/rerank and Ollama's /api/embed over the fake engine: shapes and errors."""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory

pytestmark = pytest.mark.anyio

EMB = "all-MiniLM-L6-v2-f16"
SMOL = "SmolLM2-135M-Instruct.Q4_1"


@pytest.fixture
def app(models_dir: Path, minilm_path: Path, factory: FakeFactory,
        probe_report: ProbeReport) -> FastAPI:
    (models_dir / minilm_path.name).symlink_to(minilm_path)
    return create_app(Settings(models_dir=models_dir), engine_factory=factory,
                      probe_report=probe_report)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://halo") as c:
            yield c


async def test_embeddings_in_order_and_normalised(client: httpx.AsyncClient) -> None:
    texts = [f"text number {i}" for i in range(16)]
    r = await client.post("/v1/embeddings", json={"model": EMB, "input": texts})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list"
    assert body["model"] == EMB
    assert [d["index"] for d in body["data"]] == list(range(16))
    vectors = [d["embedding"] for d in body["data"]]
    for v in vectors:
        assert math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-5)
    assert body["usage"]["prompt_tokens"] == 3 * 16 == body["usage"]["total_tokens"]
    single = await client.post("/v1/embeddings", json={"model": EMB, "input": texts[3]})
    assert single.json()["data"][0]["embedding"] == vectors[3]


async def test_base64_and_token_inputs(client: httpx.AsyncClient, factory: FakeFactory) -> None:
    r = await client.post("/v1/embeddings", json={"model": EMB, "input": "hello",
                                                  "encoding_format": "base64"})
    raw = base64.b64decode(r.json()["data"][0]["embedding"])
    floats = struct.unpack(f"<{len(raw) // 4}f", raw)
    plain = await client.post("/v1/embeddings", json={"model": EMB, "input": "hello"})
    assert list(floats) == plain.json()["data"][0]["embedding"]
    r = await client.post("/v1/embeddings", json={"model": EMB, "input": [[1, 2, 3], [4]]})
    assert r.status_code == 200
    assert factory.started[0].embedded[-1].inputs == [[1, 2, 3], [4]]


@pytest.mark.parametrize(
    ("body", "status", "param"),
    [
        ({"model": EMB, "input": []}, 400, "input"),
        ({"model": EMB, "input": ""}, 400, "input"),
        ({"model": EMB, "input": ["a", ""]}, 400, "input"),
        ({"model": EMB, "input": [[]]}, 400, "input"),
        ({"model": EMB, "input": [-1]}, 400, "input"),
        ({"model": EMB, "input": [10**9]}, 400, "input"),
        ({"model": EMB, "input": "x", "dimensions": 5}, 400, "dimensions"),
        ({"model": EMB, "input": "x", "encoding_format": "hex"}, 400, "encoding_format"),
        ({"model": EMB, "input": "\ud800"}, 400, "input"),
        ({"model": SMOL, "input": "x"}, 400, "model"),
        ({"model": "nope", "input": "x"}, 404, "model"),
        ({"input": "x"}, 400, "model"),
    ],
)
async def test_bad_embedding_requests(client: httpx.AsyncClient, body: dict[str, object],
                                      status: int, param: str) -> None:
    # json.dumps escapes the lone surrogate, as a client in another language may send it
    r = await client.post("/v1/embeddings", content=json.dumps(body),
                          headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param
    assert error["message"]


async def test_engine_refusal_is_a_400(client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/embeddings", json={"model": EMB, "input": "FAIL:invalid_request"})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "input"
    r = await client.post("/v1/embeddings",
                          json={"model": EMB, "input": "FAIL:context_length_exceeded"})
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "context_length_exceeded"


async def test_rerank_orders_by_similarity(client: httpx.AsyncClient) -> None:
    docs = ["alpha", "beta", "the query", "gamma"]
    r = await client.post("/v1/rerank", json={"model": EMB, "query": "the query",
                                              "documents": docs, "top_n": 2,
                                              "return_documents": True})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert len(results) == 2
    assert results[0] == {"index": 2, "relevance_score": pytest.approx(1.0),
                          "document": {"text": "the query"}}
    assert results[0]["relevance_score"] >= results[1]["relevance_score"]
    r = await client.post("/v1/rerank", json={"model": EMB, "query": "q", "documents": []})
    assert r.status_code == 400
    assert r.json()["error"]["param"] == "documents"


async def test_ollama_embed(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/embed", json={"model": EMB + ":latest", "input": ["a", "b"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == EMB + ":latest"
    assert len(body["embeddings"]) == 2
    assert body["prompt_eval_count"] == 2
    openai = await client.post("/v1/embeddings", json={"model": EMB, "input": "b"})
    assert body["embeddings"][1] == openai.json()["data"][0]["embedding"]
    legacy = await client.post("/api/embeddings", json={"model": EMB, "prompt": "b"})
    assert legacy.json() == {"embedding": body["embeddings"][1]}


async def test_ollama_errors_use_its_envelope(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/embed", json={"model": "missing", "input": "a"})
    assert r.status_code == 404
    assert set(r.json()) == {"error"}
    r = await client.post("/api/embed", json={"model": EMB, "input": 5})
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)
    r = await client.post("/api/embed", content=b"{not json")
    assert r.status_code == 400
    assert isinstance(r.json()["error"], str)

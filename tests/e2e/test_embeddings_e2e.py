"""Embeddings end to end: `halo serve` with a real embedding model (MiniLM-L6, BERT, mean
pooling), the real `openai` and `ollama` clients."""

from __future__ import annotations

import math
from collections.abc import Iterator

import httpx
import ollama
import pytest
from openai import BadRequestError, OpenAI

from tests.conftest import MINILM, SMOLLM, _require
from tests.e2e.server import Server, halo_server

EMB = "minilm"
CHAT = "smollm2"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("emb")
    models = tmp / "models"
    models.mkdir()
    for model in (MINILM, SMOLLM):
        (models / model.name).symlink_to(_require(model))
    (models / "models.toml").write_text(
        f'[models.{EMB}]\npath = "{MINILM.name}"\nparallel = 16\n'
        f'[models.{CHAT}]\npath = "{SMOLLM.name}"\nn_ctx = 1024\nparallel = 2\n')
    with halo_server(models, tmp) as srv:
        yield srv


@pytest.fixture
def client(server: Server) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as c:
        yield c


def _cos(a: list[float], b: list[float]) -> float:
    return math.fsum(x * y for x, y in zip(a, b, strict=True))


def test_batch_of_16(client: OpenAI) -> None:
    texts = [f"The weather in city number {i} is sunny today." for i in range(14)]
    texts += ["A cat sat on the mat.", texts[3]]  # an unrelated one, a repeat
    got = client.embeddings.create(model=EMB, input=texts)
    assert [d.index for d in got.data] == list(range(16))
    vectors = [d.embedding for d in got.data]
    assert {len(v) for v in vectors} == {384}
    for v in vectors:
        assert math.isclose(math.fsum(x * x for x in v), 1.0, rel_tol=1e-4)
    assert vectors[15] == vectors[3]  # identical inputs, identical vectors
    # meaning: two weather sentences are closer than a weather sentence and the cat
    assert _cos(vectors[0], vectors[1]) > _cos(vectors[0], vectors[14]) + 0.2
    # a vector does not depend on what else was in the batch
    alone = client.embeddings.create(model=EMB, input=texts[5]).data[0].embedding
    assert max(abs(x - y) for x, y in zip(alone, vectors[5], strict=True)) < 1e-4
    assert got.usage.prompt_tokens > 16 * 5


def test_known_tokenization_and_errors(server: Server, client: OpenAI) -> None:
    # WordPiece: [CLS] hello world [SEP]
    assert client.embeddings.create(model=EMB, input="hello world").usage.prompt_tokens == 4
    with pytest.raises(BadRequestError) as err:
        client.embeddings.create(model=EMB, input="word " * 600)
    assert "context" in str(err.value)
    with pytest.raises(BadRequestError):
        client.embeddings.create(model=CHAT, input="x")
    with pytest.raises(BadRequestError):
        client.embeddings.create(model=EMB, input="x", dimensions=64)
    r = httpx.post(server.base_url + "/chat/completions", timeout=30,
                   json={"model": EMB, "messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 400


def test_ollama_embed_truncates_and_rerank(server: Server) -> None:
    with ollama.Client(host=server.url) as client:
        got = client.embed(model=EMB, input=["word " * 600, "short"])
    assert len(got.embeddings) == 2
    assert got.prompt_eval_count == 512 + 3
    r = httpx.post(server.base_url + "/rerank", timeout=60, json={
        "model": EMB, "query": "What is the weather like?",
        "documents": ["A recipe for bread.", "It is sunny and warm today.", "Stock prices"]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["index"] == 1


def test_embedding_model_stays_next_to_chat_model(server: Server, client: OpenAI) -> None:
    client.embeddings.create(model=EMB, input="hello")
    client.chat.completions.create(model=CHAT, max_tokens=4,
                                   messages=[{"role": "user", "content": "hi"}])
    running = httpx.get(server.url + "/models/running", timeout=10).json()["data"]
    assert {m["id"] for m in running} == {EMB, CHAT}


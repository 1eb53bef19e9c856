"""Engine test helpers: real workers on the real test models, event collection."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from app.engine.client import (
    Accepted,
    ChoiceEnd,
    EngineClient,
    Event,
    Failed,
    Finished,
    GenerateRequest,
    TextDelta,
    WorkerSpec,
)

if TYPE_CHECKING:
    from app.engine.model import LlamaModel

# Gemma turn markers; the gemma 270m GGUF has no chat template of its own.
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
N_CTX = 1024
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    """All events of one request, folded."""

    events: list[Event] = field(default_factory=list)
    texts: dict[int, str] = field(default_factory=dict)
    reasons: dict[int, str] = field(default_factory=dict)
    tokens: dict[int, int] = field(default_factory=dict)
    accepted: Accepted | None = None
    finished: Finished | None = None
    failed: Failed | None = None

    @property
    def text(self) -> str:
        return self.texts.get(0, "")

    def add(self, event: Event) -> None:
        self.events.append(event)
        if isinstance(event, Accepted):
            self.accepted = event
        elif isinstance(event, TextDelta):
            self.texts[event.index] = self.texts.get(event.index, "") + event.text
        elif isinstance(event, ChoiceEnd):
            self.reasons[event.index] = event.finish_reason
            self.tokens[event.index] = event.completion_tokens
        elif isinstance(event, Finished):
            self.finished = event
        elif isinstance(event, Failed):
            self.failed = event


async def run(client: EngineClient, req: GenerateRequest) -> Result:
    """Drive one request to its end."""
    result = Result()
    async for event in client.generate(req):
        result.add(event)
    return result


def chat(request_id: str, content: str, **kw: Any) -> GenerateRequest:
    return GenerateRequest(
        request_id=request_id, messages=[{"role": "user", "content": content}], **kw
    )


@contextmanager
def in_process(spec: WorkerSpec) -> Iterator[LlamaModel]:
    """The model and context of `spec` loaded in this process (for DecodeLoop tests)."""
    from app.engine.model import LlamaModel  # llama.cpp only in tests that load in-process

    llama = LlamaModel(spec, lambda _progress: None)
    try:
        yield llama
    finally:
        llama.close()


def smol_spec(path: Path, **kw: Any) -> WorkerSpec:
    kw.setdefault("n_ctx", N_CTX)
    return WorkerSpec(model_id="smollm2", model_path=path, **kw)


def gemma_spec(path: Path, **kw: Any) -> WorkerSpec:
    kw.setdefault("chat_template", GEMMA_TEMPLATE)
    kw.setdefault("n_ctx", N_CTX)
    return WorkerSpec(model_id="gemma3", model_path=path, **kw)


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def smol(smollm_path: Path, anyio_backend: str) -> AsyncIterator[EngineClient]:
    client = await EngineClient.start(smol_spec(smollm_path, parallel=4))
    yield client
    await client.stop()


@pytest.fixture(scope="module")
async def gemma(gemma_path: Path, anyio_backend: str) -> AsyncIterator[EngineClient]:
    client = await EngineClient.start(gemma_spec(gemma_path, parallel=2))
    yield client
    await client.stop()

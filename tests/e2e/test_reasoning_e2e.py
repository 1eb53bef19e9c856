"""Reasoning with a real model whose chat template opens <think> (Qwen3 / R1 style)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from tests.conftest import SMOLLM, _require
from tests.e2e.server import Server, halo_server

THINKING_CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n<think>\n{% endif %}"
)
ASK = "Is 17 a prime number? Think step by step."


@pytest.fixture(scope="module")
def thinking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("think")
    root = tmp / "models"
    root.mkdir()
    (root / SMOLLM.name).symlink_to(_require(SMOLLM))
    (root / "models.toml").write_text(
        f'[models.thinker]\npath = "{SMOLLM.name}"\nn_ctx = 1024\nparallel = 2\n'
        f"chat_template = '''{THINKING_CHATML}'''\n")
    with halo_server(root, Path(tmp)) as server:
        yield server


def test_thinking_is_split_streaming_and_not(thinking_server: Server) -> None:
    client = openai.OpenAI(base_url=thinking_server.base_url, api_key="x", max_retries=0)
    resp = client.chat.completions.create(model="thinker", temperature=0, max_tokens=40,
                                          messages=[{"role": "user", "content": ASK}])
    message = resp.choices[0].message.model_dump()
    assert message["reasoning_content"], message
    assert message["reasoning"] == message["reasoning_content"]
    assert "<think>" not in (message["content"] or "")
    assert "</think>" not in (message["content"] or "")
    chunks = [c for c in client.chat.completions.create(
        model="thinker", temperature=0, max_tokens=40, stream=True,
        messages=[{"role": "user", "content": ASK}]) if c.choices]
    deltas = [c.choices[0].delta.model_dump() for c in chunks]
    streamed_reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    streamed_content = "".join(d.get("content") or "" for d in deltas)
    assert streamed_reasoning.strip() == message["reasoning_content"].strip()
    assert streamed_content == (message["content"] or "")


def test_reasoning_can_be_dropped(thinking_server: Server) -> None:
    client = openai.OpenAI(base_url=thinking_server.base_url, api_key="x", max_retries=0)
    resp = client.chat.completions.create(model="thinker", temperature=0, max_tokens=40,
                                          messages=[{"role": "user", "content": ASK}],
                                          extra_body={"include_reasoning": False})
    message = resp.choices[0].message.model_dump()
    assert message.get("reasoning_content") is None
    assert message.get("reasoning") is None
    assert "<think>" not in (message["content"] or "")

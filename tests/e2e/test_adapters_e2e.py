"""The protocol adapters end to end: `halo serve` on SmolLM2, the real `openai` (Responses),
`anthropic` (Messages) and `ollama` clients. Streams carry the same text as the
non-streamed answer for the same seed (greedy where the protocol has no seed)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import anthropic
import ollama
import pytest
from anthropic.types import MessageParam, TextBlock, ToolParam
from anthropic.types.parsed_message import ParsedMessage
from openai import OpenAI
from openai.types.responses import FunctionToolParam
from pydantic import BaseModel

from tests.conftest import SMOLLM, _require
from tests.e2e.server import Server, halo_server

MODEL = "smollm2"
CITY: dict[str, object] = {"type": "object", "properties": {"city": {"type": "string"}},
                           "required": ["city"]}
WEATHER: FunctionToolParam = {"type": "function", "name": "get_weather", "strict": False,
                              "description": "The weather in a city.", "parameters": CITY}


def text_of(message: anthropic.types.Message | ParsedMessage[Any]) -> str:
    return "".join(b.text for b in message.content if isinstance(b, TextBlock))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("adapters")
    models = tmp / "models"
    models.mkdir()
    (models / SMOLLM.name).symlink_to(_require(SMOLLM))
    (models / "models.toml").write_text(
        f'[models.{MODEL}]\npath = "{SMOLLM.name}"\nn_ctx = 2048\nparallel = 2\n')
    with halo_server(models, tmp) as srv:
        yield srv


@pytest.fixture
def oai(server: Server) -> Iterator[OpenAI]:
    with OpenAI(base_url=server.base_url, api_key="x", max_retries=0) as client:
        yield client


@pytest.fixture
def claude(server: Server) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=server.url, api_key="x", max_retries=0) as client:
        yield client


# ---- OpenAI Responses ------------------------------------------------------------------


def test_responses_text_and_stream(oai: OpenAI) -> None:
    args: dict[str, Any] = {"model": MODEL, "input": "Name a fruit.", "max_output_tokens": 24,
                            "temperature": 0.8, "extra_body": {"seed": 7}}
    whole = oai.responses.create(**args)
    assert whole.status in ("completed", "incomplete")
    assert whole.output_text
    assert whole.usage is not None
    assert whole.usage.output_tokens > 0
    deltas = []
    final = None
    with oai.responses.create(**args, stream=True) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
            elif event.type in ("response.completed", "response.incomplete"):
                final = event.response
    assert "".join(deltas) == whole.output_text
    assert final is not None
    assert final.output_text == whole.output_text


def test_responses_function_tool_round_trip(oai: OpenAI) -> None:
    # greedy: the round trip is under test, not what a 135M model samples at temperature 1
    # (a sampled call can ramble past the token cap and be cut before it closes)
    first = oai.responses.create(model=MODEL, input="What is the weather in Paris?",
                                 tools=[WEATHER], tool_choice="required",
                                 max_output_tokens=60, temperature=0)
    calls = [item for item in first.output if item.type == "function_call"]
    assert calls
    assert calls[0].name == "get_weather"
    assert isinstance(json.loads(calls[0].arguments)["city"], str)
    second = oai.responses.create(
        model=MODEL, previous_response_id=first.id, tools=[WEATHER],
        max_output_tokens=30,
        input=[{"type": "function_call_output", "call_id": calls[0].call_id,
                "output": "Sunny, 24 C"}])
    assert second.output_text
    assert second.usage is not None
    # the chained turn re-sends the history: its prefix comes from the KV cache
    assert second.usage.input_tokens_details.cached_tokens > 0


class City(BaseModel):
    name: str
    population: int


def test_responses_parse_json_schema(oai: OpenAI) -> None:
    parsed = oai.responses.parse(model=MODEL, input="Describe Paris as JSON.",
                                 text_format=City, max_output_tokens=60)
    assert isinstance(parsed.output_parsed, City)


def test_responses_chain_reports_cached_tokens(oai: OpenAI) -> None:
    first = oai.responses.create(model=MODEL, instructions="You are terse.",
                                 input="Say hello.", max_output_tokens=12)
    second = oai.responses.create(model=MODEL, instructions="You are terse.",
                                  previous_response_id=first.id, input="Say goodbye.",
                                  max_output_tokens=12)
    assert second.usage is not None
    assert first.usage is not None
    assert second.usage.input_tokens > first.usage.input_tokens
    assert second.usage.input_tokens_details.cached_tokens >= first.usage.input_tokens - 4
    assert oai.responses.retrieve(second.id).id == second.id
    oai.responses.delete(second.id)


# ---- Anthropic Messages ----------------------------------------------------------------


def test_messages_create_and_stream(claude: anthropic.Anthropic) -> None:
    args: dict[str, Any] = {  # max_tokens above the context: capped
        "model": MODEL, "max_tokens": 20_000, "extra_body": {"temperature": 0.0},
        "system": "Answer briefly.", "messages": [{"role": "user", "content": "Name a colour."}]}
    whole = claude.messages.create(**args)
    assert whole.content[0].type == "text"
    assert whole.stop_reason in ("end_turn", "max_tokens")
    with claude.messages.stream(**args) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == text_of(whole)
    assert text_of(final) == text
    assert final.usage.output_tokens == whole.usage.output_tokens


def test_messages_tool_use_round_trip(claude: anthropic.Anthropic) -> None:
    tool: ToolParam = {"name": "get_weather", "description": "The weather in a city.",
                       "input_schema": CITY}
    question: MessageParam = {"role": "user", "content": "What is the weather in Paris?"}
    first = claude.messages.create(model=MODEL, max_tokens=60, tools=[tool],
                                   tool_choice={"type": "tool", "name": "get_weather"},
                                   messages=[question])
    assert first.stop_reason == "tool_use"
    use = [b for b in first.content if b.type == "tool_use"][0]
    assert use.name == "get_weather"
    second = claude.messages.create(
        model=MODEL, max_tokens=30, tools=[tool],
        messages=[question, {"role": "assistant", "content": first.content},
                  {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                                "content": "Sunny, 24 C"}]}])
    assert second.content[0].type == "text"


def test_messages_stop_sequences_and_count_tokens(claude: anthropic.Anthropic) -> None:
    messages: list[MessageParam] = [
        {"role": "user", "content": "Count from one to ten in words."}]
    greedy = {"temperature": 0.0}
    free = claude.messages.create(model=MODEL, max_tokens=40, extra_body=greedy,
                                  messages=messages)
    text = text_of(free)
    words = text.split()
    assert len(words) > 3
    stop = words[2]
    cut = claude.messages.create(model=MODEL, max_tokens=40, extra_body=greedy,
                                 stop_sequences=[stop], messages=messages)
    assert cut.stop_reason == "stop_sequence"
    assert cut.stop_sequence == stop
    assert text.startswith(text_of(cut))
    counted = claude.messages.count_tokens(model=MODEL, messages=messages)
    usage = free.usage
    assert counted.input_tokens == usage.input_tokens + (usage.cache_read_input_tokens or 0)


# ---- Ollama ----------------------------------------------------------------------------


def test_ollama_chat_stream_list_ps(server: Server) -> None:
    with ollama.Client(host=server.url) as client:
        _ollama_checks(client)


def _ollama_checks(client: ollama.Client) -> None:
    messages = [{"role": "user", "content": "Name an animal."}]
    options = {"seed": 11, "temperature": 0.9, "num_predict": 20}
    whole = client.chat(model=MODEL, messages=messages, options=options)
    parts = [chunk.message.content or "" for chunk in
             client.chat(model=MODEL, messages=messages, options=options, stream=True)]
    assert "".join(parts) == whole.message.content
    assert whole.done
    assert whole.eval_count == 20 or whole.done_reason == "stop"
    assert [m.model for m in client.list().models] == [MODEL]
    assert [m.model for m in client.ps().models] == [MODEL]
    generated = client.generate(model=MODEL, prompt="Hi", options={"num_predict": 5})
    assert generated.done

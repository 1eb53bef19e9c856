"""Issue 7 acceptance: structured output (and tools) with the real openai SDK."""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, Literal

import openai
import pytest
from openai.types.chat import (
    ChatCompletionMessageFunctionToolCall,
    ChatCompletionMessageParam,
    ChatCompletionToolChoiceOptionParam,
    ChatCompletionToolParam,
)
from pydantic import BaseModel, ConfigDict, Field

from tests.e2e.server import Server

SMOL = "smollm2"


def client_of(server: Server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.base_url, api_key="unused", max_retries=0)


class City(BaseModel):
    name: str = Field(max_length=32)
    country: str = Field(max_length=32)
    population_millions: int
    climate: Literal["hot", "mild", "cold"]


class Tags(BaseModel):
    title: str = Field(max_length=40)
    tags: list[Annotated[str, Field(max_length=20)]] = Field(max_length=3)
    positive: bool


TOPICS = ["Paris", "Tokyo", "Cairo", "Oslo", "Lima", "Sydney", "Toronto", "Mumbai", "Rome",
          "Nairobi"]
REVIEWS = ["a great pizza place", "a boring movie", "a fast laptop", "a noisy hotel",
           "a lovely park", "a broken phone", "a tasty soup", "a long book", "a cheap bike",
           "a friendly dentist"]


def _parse_city(server: Server, topic: str) -> City:
    resp = client_of(server).chat.completions.parse(
        model=SMOL, temperature=0, max_tokens=300, response_format=City,
        messages=[{"role": "user", "content": f"Describe the city of {topic} as JSON."}])
    choice = resp.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.parsed is not None
    return choice.message.parsed


def _parse_tags(server: Server, review: str) -> Tags:
    resp = client_of(server).chat.completions.parse(
        model=SMOL, temperature=0, max_tokens=300, response_format=Tags,
        messages=[{"role": "user", "content": f"Tag this review as JSON: {review}."}])
    assert resp.choices[0].message.parsed is not None
    return resp.choices[0].message.parsed


def test_parse_twenty_prompts(server: Server) -> None:
    with ThreadPoolExecutor(8) as pool:
        cities = list(pool.map(lambda t: _parse_city(server, t), TOPICS))
        tags = list(pool.map(lambda r: _parse_tags(server, r), REVIEWS))
    assert len(cities) == len(TOPICS)
    assert all(isinstance(c, City) for c in cities)
    assert all(isinstance(t, Tags) and len(t.tags) <= 3 for t in tags)


@pytest.mark.parametrize("stream", [False, True])
def test_json_object_mode(server: Server, stream: bool) -> None:
    body = {"model": SMOL, "temperature": 0, "max_tokens": 200, "stream": stream,
            "response_format": {"type": "json_object"},
            "messages": [{"role": "user",
                          "content": 'Reply with exactly this JSON: {"ok": true}'}]}
    if stream:
        chunks = client_of(server).chat.completions.create(**body)  # type: ignore[call-overload]
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        resp = client_of(server).chat.completions.create(**body)  # type: ignore[call-overload]
        text = resp.choices[0].message.content
    value = json.loads(text)
    assert isinstance(value, dict)


def test_unsupported_schema_is_400(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client_of(server).chat.completions.create(
            model=SMOL, messages=[{"role": "user", "content": "hi"}],
            response_format={"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"type": "object", "not": {"type": "null"}}}})
    assert info.value.body["param"] == "response_format"  # type: ignore[index]


def test_unanchored_pattern_is_400_from_worker(server: Server) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client_of(server).chat.completions.create(
            model=SMOL, messages=[{"role": "user", "content": "hi"}], stream=True,
            response_format={"type": "json_schema", "json_schema": {
                "name": "x", "schema": {"type": "string", "pattern": "[a-z]+"}}})
    assert info.value.body["param"] == "response_format"  # type: ignore[index]


class WeatherArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    city: str = Field(max_length=30)
    unit: Literal["celsius", "fahrenheit"]


class SearchArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(max_length=40)


TOOLS: list[ChatCompletionToolParam] = [
    {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                                      "parameters": WeatherArgs.model_json_schema()}},
    {"type": "function", "function": {"name": "web_search", "description": "Search the web",
                                      "parameters": SearchArgs.model_json_schema()}},
]
ARGS: dict[str, type[BaseModel]] = {"get_weather": WeatherArgs, "web_search": SearchArgs}
QUESTIONS = ["What is the weather in Paris?", "Is it raining in Tokyo?",
             "Find news about volcanoes.", "How hot is Cairo today?", "Search for pasta recipes."]


def _ask(question: str) -> list[ChatCompletionMessageParam]:
    return [{"role": "user", "content": question}]


@pytest.mark.parametrize("choice", ["required", "named"])
def test_forced_tool_calls_validate(server: Server, choice: str) -> None:
    tool_choice: ChatCompletionToolChoiceOptionParam = (
        "required" if choice == "required"
        else {"type": "function", "function": {"name": "get_weather"}})
    for question in QUESTIONS:
        resp = client_of(server).chat.completions.create(
            model=SMOL, messages=_ask(question), tools=TOOLS, tool_choice=tool_choice,
            temperature=0, max_tokens=200)
        out = resp.choices[0]
        assert out.finish_reason == "tool_calls", out
        calls = out.message.tool_calls or []
        assert len(calls) == 1
        call = calls[0]
        assert isinstance(call, ChatCompletionMessageFunctionToolCall)
        if choice == "named":
            assert call.function.name == "get_weather"
        ARGS[call.function.name].model_validate_json(call.function.arguments)


def _streamed_calls(server: Server, **body: Any) -> tuple[list[tuple[str, str]], str | None]:
    calls: dict[int, list[str]] = {}
    finish = None
    content = ""
    for chunk in client_of(server).chat.completions.create(stream=True, **body):
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        content += delta.content or ""
        for tc in delta.tool_calls or []:
            slot = calls.setdefault(tc.index, ["", ""])
            if tc.function is not None:
                slot[0] += tc.function.name or ""
                slot[1] += tc.function.arguments or ""
        finish = chunk.choices[0].finish_reason or finish
    assert "<tool_call>" not in content
    return [(n, a) for n, a in calls.values()], finish


def test_streamed_call_matches_non_streamed(server: Server) -> None:
    body: dict[str, Any] = {"model": SMOL, "messages": _ask("Weather in Oslo?"), "tools": TOOLS,
                            "tool_choice": "required", "temperature": 0, "max_tokens": 200}
    resp = client_of(server).chat.completions.create(**body)
    whole = [(c.function.name, c.function.arguments)
             for c in resp.choices[0].message.tool_calls or []
             if isinstance(c, ChatCompletionMessageFunctionToolCall)]
    streamed, finish = _streamed_calls(server, **body)
    assert finish == "tool_calls"
    assert streamed == whole
    assert whole


@pytest.mark.parametrize("stream", [False, True])
def test_round_trip(server: Server, stream: bool) -> None:
    client = client_of(server)
    messages: list[ChatCompletionMessageParam] = _ask("What is the weather in Paris?")
    first = client.chat.completions.create(model=SMOL, messages=messages, tools=TOOLS,
                                           tool_choice="required", temperature=0,
                                           max_tokens=200)
    [call] = first.choices[0].message.tool_calls or []
    assert isinstance(call, ChatCompletionMessageFunctionToolCall)
    messages.append({"role": "assistant", "content": None, "tool_calls": [
        {"id": call.id, "type": "function",
         "function": {"name": call.function.name, "arguments": call.function.arguments}}]})
    messages.append({"role": "tool", "tool_call_id": call.id,
                     "content": json.dumps({"temperature": 21, "sky": "sunny"})})
    body: dict[str, Any] = {"model": SMOL, "messages": messages, "tools": TOOLS,
                            "temperature": 0, "max_tokens": 60}
    if stream:
        calls, finish = _streamed_calls(server, **body)
        assert finish in {"stop", "length", "tool_calls"}
        assert finish != "tool_calls" or calls
    else:
        resp = client.chat.completions.create(**body)
        answer = resp.choices[0]
        assert answer.finish_reason in {"stop", "length", "tool_calls"}
        assert answer.message.content is not None or answer.message.tool_calls


def test_chat_logprobs_are_the_models(server: Server) -> None:
    resp = client_of(server).chat.completions.create(
        model=SMOL, messages=_ask("Name a color."), temperature=0, max_tokens=8,
        logprobs=True, top_logprobs=3)
    choice = resp.choices[0]
    assert choice.logprobs is not None
    content = choice.logprobs.content or []
    assert resp.usage is not None
    assert len(content) == resp.usage.completion_tokens
    assert "".join(c.token for c in content) == choice.message.content
    for entry in content:
        assert entry.logprob <= 0
        assert len(entry.top_logprobs) == 3
        # greedy: the sampled token is the most likely one
        assert entry.top_logprobs[0].token == entry.token
        assert abs(entry.top_logprobs[0].logprob - entry.logprob) < 1e-4
        assert sum(math.exp(t.logprob) for t in entry.top_logprobs) <= 1.0 + 1e-4


def test_completion_logprobs(server: Server) -> None:
    resp = client_of(server).completions.create(
        model=SMOL, prompt="The capital of France is", temperature=0, max_tokens=6, logprobs=2)
    logprobs = resp.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens is not None
    assert logprobs.token_logprobs is not None
    assert logprobs.text_offset is not None
    assert "".join(logprobs.tokens) == resp.choices[0].text
    assert all(lp <= 0 for lp in logprobs.token_logprobs)
    assert logprobs.text_offset[0] == 0
    assert logprobs.top_logprobs is not None
    assert all(len(t) <= 2 for t in logprobs.top_logprobs)

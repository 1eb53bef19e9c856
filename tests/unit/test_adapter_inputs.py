"""Protocol adapters, request side: Responses items, Anthropic blocks, Ollama durations."""

from __future__ import annotations

from typing import Any

import pytest

from app.errors import InvalidRequest
from app.protocol.anthropic import messages_input as anthropic
from app.protocol.anthropic.messages import Message, ToolChoice
from app.protocol.ollama.schemas import keep_alive_seconds
from app.protocol.openai import responses_input as responses
from app.services.response_store import ResponseStore


def test_responses_items_become_chat_turns() -> None:
    items: list[dict[str, Any]] = [
        {"role": "developer", "content": [{"type": "input_text", "text": "be brief"}]},
        {"type": "message", "role": "user", "content": "weather in Paris?"},
        {"type": "reasoning", "summary": [{"type": "summary_text", "text": "call the tool"}]},
        {"type": "function_call", "call_id": "call_1", "name": "get_weather",
         "arguments": "{\"city\": \"Paris\"}"},
        {"type": "function_call", "call_id": "call_2", "name": "get_time", "arguments": ""},
        {"type": "function_call_output", "call_id": "call_1", "output": "sunny"},
        {"type": "web_search_call", "id": "ws_1"},  # a kind this server does not run
        {"role": "assistant", "content": [{"type": "output_text", "text": "It is sunny."}]},
    ]
    assert responses.input_messages(items, "You are halo.") == [
        {"role": "system", "content": "You are halo."},
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": "", "reasoning_content": "call the tool",
         "tool_calls": [
             {"id": "call_1", "type": "function",
              "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
             {"id": "call_2", "type": "function",
              "function": {"name": "get_time", "arguments": {}}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
        {"role": "assistant", "content": "It is sunny."},
    ]


@pytest.mark.parametrize("item", [
    {"role": "robot", "content": "x"},
    {"type": "function_call", "name": "f"},
    {"type": "function_call_output", "output": "x"},
    {"role": "user", "content": [{"type": "input_image", "image_url": "x"}]},
    {"role": "user", "content": 5},
    "just a string",
])
def test_bad_responses_items_are_refused(item: object) -> None:
    with pytest.raises(InvalidRequest):
        responses.input_messages([item], None)  # type: ignore[list-item]


def test_responses_tools_keep_functions_only() -> None:
    tools: list[dict[str, Any]] = [
             {"type": "function", "name": "f", "parameters": {"type": "object"}},
             {"type": "web_search"}, {"type": "custom", "name": "apply_patch"},
             {"type": "local_shell"}]
    assert responses.chat_tools(tools) == [
        {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    assert responses.chat_tools([{"type": "web_search"}]) is None
    assert responses.chat_tool_choice({"type": "function", "name": "f"}, tools) == {
        "type": "function", "function": {"name": "f"}}
    assert responses.chat_tool_choice("required", None) == "none"
    assert responses.chat_tool_choice({"type": "web_search"}, tools) == "auto"


def test_anthropic_blocks_become_chat_turns() -> None:
    messages = [
        Message(role="user", content="weather?"),
        Message(role="assistant", content=[
            {"type": "thinking", "thinking": "use the tool", "signature": "x"},
            {"type": "text", "text": "Checking."},
            {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
             "input": {"city": "Paris"}}]),
        Message(role="user", content=[
            {"type": "tool_result", "tool_use_id": "toolu_1",
             "content": [{"type": "text", "text": "sunny"}]},
            {"type": "text", "text": "and tomorrow?"}]),
        Message(role="system", content=[{"type": "text", "text": "Be brief."}]),
    ]
    system = [{"type": "text", "text": "You are "}, {"type": "text", "text": "halo."}]
    assert anthropic.chat_messages(messages, system) == [
        {"role": "system", "content": "You are halo."},
        {"role": "user", "content": "weather?"},
        {"role": "assistant", "content": "Checking.", "reasoning_content": "use the tool",
         "tool_calls": [{"id": "toolu_1", "type": "function",
                         "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "sunny"},
        {"role": "user", "content": "and tomorrow?"},
        {"role": "system", "content": "Be brief."},
    ]


def test_anthropic_tools_and_choice() -> None:
    tools: list[dict[str, Any]] = [
             {"name": "f", "description": "d", "input_schema": {"type": "object"}},
             {"type": "bash_20250124", "name": "bash"},
             {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}]
    chat = anthropic.chat_tools(tools)
    assert chat == [{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object"}, "description": "d"}}]
    assert anthropic.chat_tool_choice(ToolChoice(type="any"), chat) == "required"
    assert anthropic.chat_tool_choice(ToolChoice(type="tool", name="f"), chat) == {
        "type": "function", "function": {"name": "f"}}
    assert anthropic.chat_tool_choice(ToolChoice(type="none"), chat) == "none"
    assert anthropic.chat_tool_choice(ToolChoice(type="any"), None) == "none"
    with pytest.raises(InvalidRequest):
        anthropic.chat_tool_choice(ToolChoice(type="tool"), chat)
    with pytest.raises(InvalidRequest):
        anthropic.chat_messages([Message(role="user", content=[{"type": "image"}])], None)


@pytest.mark.parametrize(("value", "seconds"), [
    (None, None), ("5m", 300.0), ("1h30m", 5400.0), ("300ms", 0.3), ("0", 0.0), (0, 0.0),
    (120, 120.0), ("-1", -1.0), (-5, -1.0), ("10s", 10.0), ("2.5m", 150.0),
])
def test_keep_alive(value: str | float | None, seconds: float | None) -> None:
    assert keep_alive_seconds(value) == seconds


@pytest.mark.parametrize("value", ["soon", "5 minutes", "m5", ""])
def test_bad_keep_alive(value: str) -> None:
    with pytest.raises(ValueError, match="keep_alive"):
        keep_alive_seconds(value)


def test_response_store_is_bounded_in_count_and_age() -> None:
    now = [0.0]
    store = ResponseStore(max_entries=2, ttl_seconds=10, clock=lambda: now[0])
    for i in range(3):
        store.put({"id": f"r{i}"}, [], "m")
    assert store.get("r0") is None
    assert len(store) == 2
    now[0] = 5
    store.put({"id": "r3"}, [], "m")
    now[0] = 10.5  # r1, r2 stored at 0: expired
    assert store.get("r2") is None
    assert store.get("r3") is not None
    assert store.delete("r3")
    assert not store.delete("r3")

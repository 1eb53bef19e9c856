"""Tool-call parsing of realistic model outputs, streaming holdback, tool plans."""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.errors import InvalidRequest
from app.services.tool_calls import ToolStream, parse_tool_calls
from app.services.tools import plan_tools

NAMES = ["get_weather", "search"]


def calls_of(text: str) -> list[tuple[str, dict[str, Any]]]:
    return [(c.name, json.loads(c.arguments)) for c in parse_tool_calls(text, NAMES).calls]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>',
         [("get_weather", {"city": "Paris"})]),
        # Qwen, two calls, no closing tag on the last (generation cut at a stop token)
        ('<tool_call>\n{"name": "search", "arguments": {"q": "a"}}\n</tool_call>\n'
         '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}',
         [("search", {"q": "a"}), ("get_weather", {"city": "Oslo"})]),
        # Llama 3.x
        ('{"name": "get_weather", "parameters": {"city": "Rome"}}',
         [("get_weather", {"city": "Rome"})]),
        ('<|python_tag|>{"name": "search", "parameters": {"q": "x"}}',
         [("search", {"q": "x"})]),
        ('{"name": "search", "parameters": {"q": "x"}}; '
         '{"name": "get_weather", "parameters": {"city": "y"}}',
         [("search", {"q": "x"}), ("get_weather", {"city": "y"})]),
        # Mistral
        ('[TOOL_CALLS][{"name": "get_weather", "arguments": {"city": "Lima"}}]',
         [("get_weather", {"city": "Lima"})]),
        ('[TOOL_CALLS]get_weather[ARGS]{"city": "Lima"}', [("get_weather", {"city": "Lima"})]),
        # generic: fenced JSON, arguments as a string, an array
        ('```json\n{"name": "search", "arguments": "{\\"q\\": \\"z\\"}"}\n```',
         [("search", {"q": "z"})]),
        ('[{"name": "search", "arguments": {}}]', [("search", {})]),
    ],
)
def test_formats(text: str, expected: list[tuple[str, dict[str, Any]]]) -> None:
    assert calls_of(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "The weather is nice.",
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": ',  # cut mid-JSON
        '<tool_call>{"name": "launch_rockets", "arguments": {}}</tool_call>',  # not offered
        '{"name": "search"',
        '{"answer": 42}',
        "[TOOL_CALLS]get_weather[ARGS]{broken",
        '[1, 2, 3]',
    ],
)
def test_malformed_stays_text(text: str) -> None:
    parsed = parse_tool_calls(text, NAMES)
    assert parsed.calls == []
    assert parsed.content == text


def test_text_around_hermes_block_is_content() -> None:
    parsed = parse_tool_calls(
        'Let me check.\n<tool_call>{"name": "search", "arguments": {"q": "b"}}</tool_call>',
        NAMES)
    assert parsed.content == "Let me check."
    assert [c.name for c in parsed.calls] == ["search"]
    assert parsed.calls[0].id.startswith("call_")


def _stream(pieces: list[str]) -> tuple[str, list[str]]:
    ts = ToolStream(NAMES)
    shown = "".join(ts.push(p) for p in pieces)
    end = ts.finish()
    return shown + (end.content or ""), [c.name for c in end.calls]


def test_stream_never_shows_markup() -> None:
    pieces = ["Sure", ". <tool", "_call>\n{\"name\": \"search\", ", "\"arguments\": {}}",
              "\n</tool_call>"]
    ts = ToolStream(NAMES)
    shown = [ts.push(p) for p in pieces]
    assert "".join(shown) == "Sure."  # whitespace before a call is held like the call
    end = ts.finish()
    assert [c.name for c in end.calls] == ["search"]
    assert "<tool" not in (end.content or "")


def test_stream_plain_text_flows() -> None:
    ts = ToolStream(NAMES)
    assert ts.push("Hello") == "Hello"
    assert ts.push(" world <") == " world"
    assert ts.push("b>") == " <b>"
    assert ts.finish().content is None


def test_stream_leading_json_held_until_end() -> None:
    text, names = _stream(['{"name": "get_weather", ', '"arguments": {"city": "Paris"}}'])
    assert (text, names) == ("", ["get_weather"])
    text, names = _stream(["[1] first", " point"])
    assert (text, names) == ("[1] first point", [])


TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string", "maxLength": 20}},
        "required": ["city"]}}},
    {"type": "function", "function": {"name": "search"}}]


def test_plans() -> None:
    assert plan_tools(None, None).tools is None
    assert plan_tools(TOOLS, "none").names is None
    auto = plan_tools(TOOLS, None)
    assert auto.names == NAMES
    assert auto.json_schema is None
    assert auto.tools
    required = plan_tools(TOOLS, "required")
    assert required.json_schema is not None
    assert len(required.json_schema["anyOf"]) == 2
    named = plan_tools(TOOLS, {"type": "function", "function": {"name": "get_weather"}})
    assert named.json_schema is not None
    assert named.json_schema["properties"]["name"] == {"const": "get_weather"}


@pytest.mark.parametrize(
    ("tools", "choice", "param"),
    [
        (TOOLS, {"type": "function", "function": {"name": "nope"}}, "tool_choice"),
        (TOOLS, "sometimes", "tool_choice"),
        (None, "required", "tool_choice"),
        ([{"type": "function", "function": {}}], None, "tools"),
        ([{"type": "retrieval"}], None, "tools"),
        ([TOOLS[1], TOOLS[1]], None, "tools"),
        ([{"type": "function", "function": {"name": "f", "parameters": {
            "type": "object", "properties": {"n": {"type": "integer", "minimum": 1}}}}}],
         "required", "tools"),
    ],
)
def test_plan_errors_name_param(tools: Any, choice: Any, param: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        plan_tools(tools, choice)
    assert info.value.param == param

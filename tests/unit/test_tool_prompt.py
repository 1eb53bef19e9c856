"""Tools for templates that ignore them: system prompt, calls and results as text."""

from __future__ import annotations

from typing import Any

from app.engine.tool_prompt import with_tools_as_text

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather",
                                           "parameters": {"type": "object"}}}]


def test_history_becomes_text() -> None:
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
        {"role": "tool", "tool_call_id": "c2", "content": "warm"},
    ]
    out = with_tools_as_text(messages, TOOLS)
    assert [m["role"] for m in out] == ["system", "user", "assistant", "user"]
    assert out[0]["content"].startswith("Be brief.")
    assert '"name": "get_weather"' in out[0]["content"]
    assert out[2]["content"] == ('<tool_call>\n{"name": "get_weather", "arguments": '
                                 '{"city": "Paris"}}\n</tool_call>')
    assert out[3]["content"].count("<tool_response>") == 2


def test_system_message_added() -> None:
    out = with_tools_as_text([{"role": "user", "content": "hi"}], TOOLS)
    assert out[0]["role"] == "system"
    assert "<tools>" in out[0]["content"]

"""Protocol adapters, reply side: reply events -> Responses / Messages / Ollama (pure).

Each stream must carry exactly what the non-streamed reply (the fold of the same events)
says: the same text, reasoning and calls, in documented event order.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from app.protocol.anthropic.messages_reply import MessagesRenderer
from app.protocol.ollama.reply import OllamaRenderer
from app.protocol.openai.responses_reply import ResponseShape, ResponsesRenderer
from app.services.events import (
    ChoiceDone,
    ContentDelta,
    Done,
    ReasoningDelta,
    Reply,
    ReplyEvent,
    Started,
    ToolCallDone,
    Usage,
)
from app.services.tool_calls import ToolCall

CALL = ToolCall("get_weather", '{"city": "Paris"}', "call_abc")


def events(reasoning: str = "", content: str = "", calls: tuple[ToolCall, ...] = (),
           finish: str = "stop", stop: str | None = None) -> list[ReplyEvent]:
    out: list[ReplyEvent] = [Started(12, 4)]
    out += [ReasoningDelta(0, ch) for ch in _pieces(reasoning)]
    out += [ContentDelta(0, ch) for ch in _pieces(content)]
    out += [ToolCallDone(0, i, c) for i, c in enumerate(calls)]
    reason = "tool_calls" if calls else finish
    out.append(ChoiceDone(0, reason, 7, stop_sequence=stop))  # type: ignore[arg-type]
    out.append(Done(Usage(12, 4, 7)))
    return out


def _pieces(text: str) -> list[str]:
    return [text[i:i + 3] for i in range(0, len(text), 3)]


def fold(evs: list[ReplyEvent]) -> Reply:
    reply = Reply(1)
    for e in evs:
        reply.add(e)
    return reply


CASES = [
    {"content": "Hello there, friend."},
    {"reasoning": "think first", "content": "Answer."},
    {"reasoning": "plan", "calls": (CALL,)},
    {"content": "Calling.", "calls": (CALL, ToolCall("f", "{}", "call_2"))},
    {},  # an empty reply
    {"content": "cut", "finish": "length"},
    {"content": "until", "stop": "END"},
]


@pytest.mark.parametrize("case", CASES)
def test_responses_stream_matches_the_response(case: dict[str, Any]) -> None:
    evs = events(**case)
    streamed = ResponsesRenderer(ResponseShape(model="m"))
    out = streamed.opening()
    for e in evs:
        out += streamed.render(e)
    assert [o["sequence_number"] for o in out] == list(range(len(out)))
    final = out[-1]["response"]
    whole = streamed.response(fold(evs))
    assert final == whole
    assert out[0]["type"] == "response.created"
    assert out[-1]["type"] == ("response.incomplete" if case.get("finish") == "length"
                               else "response.completed")
    # deltas add up to the final items
    text = "".join(o["delta"] for o in out if o["type"] == "response.output_text.delta")
    thought = "".join(o["delta"] for o in out if o["type"] == "response.reasoning_text.delta")
    assert text == case.get("content", "")
    assert thought == case.get("reasoning", "")
    done_items = [o["item"] for o in out if o["type"] == "response.output_item.done"]
    assert done_items == whole["output"]
    added = [o["output_index"] for o in out if o["type"] == "response.output_item.added"]
    assert added == list(range(len(whole["output"])))
    for call in case.get("calls", ()):
        args = "".join(o["delta"] for o in out
                       if o["type"] == "response.function_call_arguments.delta"
                       and o["item_id"] == "fc_" + call.id.removeprefix("call_"))
        assert args == call.arguments
    assert whole["usage"]["input_tokens_details"]["cached_tokens"] == 4


@pytest.mark.parametrize("case", CASES)
def test_messages_stream_matches_the_message(case: dict[str, Any]) -> None:
    evs = events(**case)
    streamed = MessagesRenderer("m")
    out: list[tuple[str, dict[str, Any]]] = []
    for e in evs:
        out += streamed.render(e)
    whole = MessagesRenderer("m").message(fold(evs))
    names = [name for name, _ in out]
    assert names[:2] == ["message_start", "ping"]
    assert names[-2:] == ["message_delta", "message_stop"]
    # rebuild the message the way the SDK does
    blocks: list[dict[str, Any]] = []
    partial: dict[int, str] = {}
    for name, data in out:
        if name == "content_block_start":
            assert data["index"] == len(blocks)
            blocks.append(dict(data["content_block"]))
        elif name == "content_block_delta":
            delta, block = data["delta"], blocks[data["index"]]
            if delta["type"] == "text_delta":
                block["text"] += delta["text"]
            elif delta["type"] == "thinking_delta":
                block["thinking"] += delta["thinking"]
            else:
                partial[data["index"]] = partial.get(data["index"], "") + delta["partial_json"]
    for index, text in partial.items():
        blocks[index]["input"] = json.loads(text)
    assert blocks == whole["content"]
    delta = out[-2][1]["delta"]
    assert delta["stop_reason"] == whole["stop_reason"]
    expected = {"length": "max_tokens"}.get(case.get("finish", ""), "end_turn")
    if case.get("calls"):
        expected = "tool_use"
    if case.get("stop"):
        expected = "stop_sequence"
    assert whole["stop_reason"] == expected
    assert whole["stop_sequence"] == case.get("stop")
    assert whole["usage"] == {"input_tokens": 8, "output_tokens": 7,
                              "cache_read_input_tokens": 4, "cache_creation_input_tokens": 0}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("chat", [True, False])
def test_ollama_lines_match_the_reply(case: dict[str, Any], chat: bool) -> None:
    evs = events(**case)
    streamed = OllamaRenderer("m", chat=chat)
    lines: list[dict[str, Any]] = []
    for e in evs:
        lines += streamed.render(e)
    whole = OllamaRenderer("m", chat=chat).final(fold(evs), whole=True)
    assert [line["done"] for line in lines] == [False] * (len(lines) - 1) + [True]
    assert lines[-1]["done_reason"] == whole["done_reason"]
    assert lines[-1]["eval_count"] == whole["eval_count"] == 7
    if chat:
        text = "".join(line["message"]["content"] for line in lines)
        thought = "".join(line["message"].get("thinking", "") for line in lines)
        calls = [c for line in lines for c in line["message"].get("tool_calls", [])]
        assert text == whole["message"]["content"]
        assert thought == (whole["message"].get("thinking") or "")
        assert calls == whole["message"].get("tool_calls", [])
    else:
        assert "".join(line["response"] for line in lines) == whole["response"]

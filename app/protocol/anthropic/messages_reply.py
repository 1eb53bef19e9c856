"""Reply events -> Anthropic Messages stream events and the message object (pure).

Content blocks in order: `thinking` (the model's reasoning), `text`, then one `tool_use`
per call. A non-streamed message is rendered from the fold of the same events.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from app.protocol.anthropic.messages_input import input_json
from app.services.events import (
    ChoiceDone,
    ContentDelta,
    Done,
    ReasoningDelta,
    Reply,
    ReplyEvent,
    Started,
    ToolCallDone,
)
from app.services.tool_calls import ToolCall

JSON_PIECE = 64  # characters of a tool input per input_json_delta


def stop_reason(finish: str, stop_sequence: str | None) -> str:
    if finish == "length":
        return "max_tokens"
    if finish == "tool_calls":
        return "tool_use"
    return "stop_sequence" if stop_sequence else "end_turn"


def _tool_id(call: ToolCall) -> str:
    return "toolu_" + call.id.removeprefix("call_")


class MessagesRenderer:
    def __init__(self, model: str, stop_sequences: tuple[str, ...] | None = None) -> None:
        self.model = model
        # a stop string models.toml adds is not one the client asked for: that is end_turn
        self.stop_sequences = stop_sequences
        self.id = f"msg_{uuid.uuid4().hex}"
        self.reply = Reply(1)
        self._open: str | None = None  # "thinking" | "text"
        self._index = -1
        self._text_done = False
        self._calls = 0

    def _usage(self, reply: Reply) -> dict[str, Any]:
        u = reply.usage
        prompt = u.prompt_tokens if u else reply.prompt_tokens
        cached = u.cached_tokens if u else reply.cached_tokens
        return {"input_tokens": prompt - cached, "output_tokens": u.completion_tokens if u else 0,
                "cache_read_input_tokens": cached, "cache_creation_input_tokens": 0}

    def message(self, reply: Reply) -> dict[str, Any]:
        choice = reply.choices[0]
        content: list[dict[str, Any]] = []
        if choice.reasoning is not None:
            content.append({"type": "thinking", "thinking": choice.reasoning, "signature": ""})
        if choice.content or not choice.tool_calls:
            content.append({"type": "text", "text": choice.content})
        content.extend({"type": "tool_use", "id": _tool_id(call), "name": call.name,
                        "input": input_json(call.arguments)} for call in choice.tool_calls)
        stop = choice.stop_sequence
        if self.stop_sequences is not None and stop not in self.stop_sequences:
            stop = None
        return {"id": self.id, "type": "message", "role": "assistant", "model": self.model,
                "content": content, "stop_reason": stop_reason(choice.finish_reason, stop),
                "stop_sequence": stop, "usage": self._usage(reply)}

    # ---- the stream: (event name, data) pairs --------------------------------------------

    def render(self, event: ReplyEvent) -> list[tuple[str, dict[str, Any]]]:
        self.reply.add(event)
        if isinstance(event, Started):
            start: dict[str, Any] = {"id": self.id, "type": "message", "role": "assistant",
                     "model": self.model, "content": [], "stop_reason": None,
                     "stop_sequence": None, "usage": self._usage(self.reply)}
            return [("message_start", {"type": "message_start", "message": start}),
                    ("ping", {"type": "ping"})]
        if isinstance(event, ReasoningDelta):
            return self._delta("thinking", event.text)
        if isinstance(event, ContentDelta):
            return self._delta("text", event.text)
        if isinstance(event, ToolCallDone):
            return self._close() + self._tool_use(event.call)
        if isinstance(event, ChoiceDone):
            out = self._close()
            if not self._text_done and not self._calls:
                out += self._delta("text", "") + self._close()
            return out
        assert isinstance(event, Done)
        final = self.message(self.reply)
        delta = {"stop_reason": final["stop_reason"], "stop_sequence": final["stop_sequence"]}
        return [("message_delta", {"type": "message_delta", "delta": delta,
                                   "usage": {"output_tokens": event.usage.completion_tokens}}),
                ("message_stop", {"type": "message_stop"})]

    def _block(self, block: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        self._index += 1
        return ("content_block_start", {"type": "content_block_start", "index": self._index,
                                        "content_block": block})

    def _delta(self, kind: str, text: str) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        if self._open != kind:
            out += self._close()
            self._open = kind
            out.append(self._block({"type": "thinking", "thinking": "", "signature": ""}
                                   if kind == "thinking" else {"type": "text", "text": ""}))
        if text:
            delta = ({"type": "thinking_delta", "thinking": text} if kind == "thinking"
                     else {"type": "text_delta", "text": text})
            out.append(("content_block_delta", {"type": "content_block_delta",
                                                "index": self._index, "delta": delta}))
        return out

    def _close(self) -> list[tuple[str, dict[str, Any]]]:
        if self._open is None:
            return []
        if self._open == "text":
            self._text_done = True
        self._open = None
        return [("content_block_stop", {"type": "content_block_stop", "index": self._index})]

    def _tool_use(self, call: ToolCall) -> list[tuple[str, dict[str, Any]]]:
        self._calls += 1
        out = [self._block({"type": "tool_use", "id": _tool_id(call), "name": call.name,
                            "input": {}})]
        text = json.dumps(input_json(call.arguments), ensure_ascii=False)
        for at in range(0, len(text), JSON_PIECE):
            delta = {"type": "input_json_delta", "partial_json": text[at:at + JSON_PIECE]}
            out.append(("content_block_delta", {"type": "content_block_delta",
                                                "index": self._index, "delta": delta}))
        out.append(("content_block_stop", {"type": "content_block_stop", "index": self._index}))
        return out

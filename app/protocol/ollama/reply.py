"""Reply events -> Ollama's `/api/chat` and `/api/generate` objects (pure).

Streamed replies are NDJSON lines, one per piece of text (`message.content` or
`message.thinking` for chat, `response` / `thinking` for generate), tool calls in a line
of their own, and a last line with `done: true`, the reason and the timings (ns).
A non-streamed reply is the fold of the same events rendered as that last line.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from app.protocol.anthropic.messages_input import input_json
from app.services.events import (
    ContentDelta,
    Done,
    ReasoningDelta,
    Reply,
    ReplyEvent,
    ToolCallDone,
)
from app.services.tool_calls import ToolCall


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


def _call(call: ToolCall) -> dict[str, Any]:
    return {"function": {"name": call.name, "arguments": input_json(call.arguments)}}


class OllamaRenderer:
    def __init__(self, model: str, chat: bool) -> None:
        self.model = model
        self.chat = chat
        self.reply = Reply(1)
        self.started = time.perf_counter()

    def _line(self, content: str = "", thinking: str | None = None,
              calls: list[ToolCall] | None = None, done: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {"model": self.model, "created_at": _now()}
        if self.chat:
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if thinking is not None:
                message["thinking"] = thinking
            if calls:
                message["tool_calls"] = [_call(c) for c in calls]
            out["message"] = message
        else:
            out["response"] = content
            if thinking is not None:
                out["thinking"] = thinking
        out["done"] = done
        return out

    def final(self, reply: Reply, whole: bool) -> dict[str, Any]:
        """The last line (whole=False) or the non-streamed reply (whole=True)."""
        choice = reply.choices[0]
        line = (self._line(choice.content, choice.reasoning, choice.tool_calls, done=True)
                if whole else self._line(done=True))
        u = reply.usage
        line["done_reason"] = "length" if choice.finish_reason == "length" else "stop"
        line["total_duration"] = int((time.perf_counter() - self.started) * 1e9)
        line["load_duration"] = int(u.queue_ms * 1e6) if u else 0
        line["prompt_eval_count"] = (u.prompt_tokens - u.cached_tokens) if u else 0
        line["prompt_eval_duration"] = int(u.prompt_ms * 1e6) if u else 0
        line["eval_count"] = u.completion_tokens if u else 0
        line["eval_duration"] = int(u.decode_ms * 1e6) if u else 0
        return line

    def render(self, event: ReplyEvent) -> list[dict[str, Any]]:
        self.reply.add(event)
        if isinstance(event, ContentDelta):
            return [self._line(event.text)]
        if isinstance(event, ReasoningDelta):
            return [self._line("", thinking=event.text)]
        if isinstance(event, ToolCallDone) and self.chat:
            return [self._line("", calls=[event.call])]
        if isinstance(event, Done):
            return [self.final(self.reply, whole=False)]
        return []

"""Reply events -> Responses API stream events and the response object (pure).

The response object is rendered from the fold of the reply events (`Reply`), both for a
non-streamed request and for the `response.completed` event that ends a stream, so the two
always agree. Streamed items carry the ids the final object carries.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

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

ARGUMENT_PIECE = 64  # characters of arguments per streamed delta


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class ResponseShape:
    """The request fields a response object echoes back."""

    model: str
    instructions: str | None = None
    max_output_tokens: int | None = None
    previous_response_id: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    tool_choice: Any = "auto"
    parallel_tool_calls: bool = True
    text_format: dict[str, Any] = field(default_factory=lambda: {"type": "text"})
    store: bool = True
    metadata: dict[str, Any] = field(default_factory=dict)
    reasoning: dict[str, Any] = field(default_factory=lambda: {"effort": None,
                                                               "summary": None})


def _call_item(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call.id, "name": call.name,
            "arguments": call.arguments if status == "completed" else "", "status": status}


def _message_item(item_id: str, text: str | None, status: str) -> dict[str, Any]:
    content = [] if text is None else [_text_part(text)]
    return {"type": "message", "id": item_id, "status": status, "role": "assistant",
            "content": content}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def _reasoning_item(item_id: str, text: str | None) -> dict[str, Any]:
    content = [] if text is None else [{"type": "reasoning_text", "text": text}]
    return {"type": "reasoning", "id": item_id, "summary": [], "content": content}


class ResponsesRenderer:
    def __init__(self, shape: ResponseShape) -> None:
        self.shape = shape
        self.id = new_id("resp")
        self.created_at = int(time.time())
        self.reasoning_id = new_id("rs")
        self.message_id = new_id("msg")
        self.reply = Reply(1)
        self._seq = 0
        self._open: str | None = None  # "reasoning" | "message"
        self._index = -1  # output index of the open item
        self._text = ""  # text of the open item so far
        self._message_done = False
        self._calls = 0

    # ---- the response object ----------------------------------------------------------

    def output(self, reply: Reply) -> list[dict[str, Any]]:
        choice = reply.choices[0]
        items: list[dict[str, Any]] = []
        if choice.reasoning is not None:
            items.append(_reasoning_item(self.reasoning_id, choice.reasoning))
        if choice.content or not choice.tool_calls:
            items.append(_message_item(self.message_id, choice.content, "completed"))
        items.extend(_call_item(self._call_id(call), call, "completed")
                     for call in choice.tool_calls)
        return items

    def _call_id(self, call: ToolCall) -> str:
        return "fc_" + call.id.removeprefix("call_")

    def response(self, reply: Reply | None, status: str = "completed") -> dict[str, Any]:
        s = self.shape
        out: dict[str, Any] = {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": status, "error": None, "incomplete_details": None,
            "instructions": s.instructions, "max_output_tokens": s.max_output_tokens,
            "model": s.model, "output": [], "parallel_tool_calls": s.parallel_tool_calls,
            "previous_response_id": s.previous_response_id, "reasoning": s.reasoning,
            "store": s.store, "temperature": s.temperature, "text": {"format": s.text_format},
            "tool_choice": s.tool_choice, "tools": s.tools, "top_p": s.top_p,
            "truncation": "disabled", "usage": None, "user": None, "metadata": s.metadata,
        }
        if reply is None:
            return out
        out["output"] = self.output(reply)
        choice = reply.choices[0]
        if choice.finish_reason == "length":
            out["status"] = "incomplete"
            out["incomplete_details"] = {"reason": "max_output_tokens"}
        if reply.usage is not None:
            u = reply.usage
            out["usage"] = {
                "input_tokens": u.prompt_tokens,
                "input_tokens_details": {"cached_tokens": u.cached_tokens},
                "output_tokens": u.completion_tokens,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": u.total_tokens,
            }
        return out

    # ---- the stream ---------------------------------------------------------------------

    def event(self, type_: str, **fields: Any) -> dict[str, Any]:
        self._seq += 1
        return {"type": type_, "sequence_number": self._seq - 1, **fields}

    def opening(self) -> list[dict[str, Any]]:
        base = self.response(None, "in_progress")
        return [self.event("response.created", response=base),
                self.event("response.in_progress", response=base)]

    def render(self, event: ReplyEvent) -> list[dict[str, Any]]:
        self.reply.add(event)
        if isinstance(event, ReasoningDelta):
            return self._delta("reasoning", event.text)
        if isinstance(event, ContentDelta):
            return self._delta("message", event.text)
        if isinstance(event, ToolCallDone):
            return self._close() + self._tool_call(event.call)
        if isinstance(event, ChoiceDone):
            out = self._close()
            if not self._message_done and not self._calls:
                out += self._delta("message", "") + self._close()  # an empty reply
            return out
        if isinstance(event, Done):
            final = self.response(self.reply)
            kind = ("response.incomplete" if final["status"] == "incomplete"
                    else "response.completed")
            return [self.event(kind, response=final)]
        assert isinstance(event, Started)
        return []

    def error(self, code: str, message: str, param: str | None) -> dict[str, Any]:
        return self.event("error", code=code, message=message, param=param)

    def _delta(self, kind: str, text: str) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        if self._open != kind:
            out += self._close()
            out += self._open_item(kind)
        self._text += text
        item_id = self.reasoning_id if kind == "reasoning" else self.message_id
        if text:
            name = ("response.reasoning_text.delta" if kind == "reasoning"
                    else "response.output_text.delta")
            extra: dict[str, Any] = {} if kind == "reasoning" else {"logprobs": []}
            out.append(self.event(name, item_id=item_id, output_index=self._index,
                                   content_index=0, delta=text, **extra))
        return out

    def _open_item(self, kind: str) -> list[dict[str, Any]]:
        self._open, self._index, self._text = kind, self._index + 1, ""
        if kind == "reasoning":
            return [self.event("response.output_item.added", output_index=self._index,
                                item=_reasoning_item(self.reasoning_id, None))]
        return [self.event("response.output_item.added", output_index=self._index,
                            item=_message_item(self.message_id, None, "in_progress")),
                self.event("response.content_part.added", item_id=self.message_id,
                            output_index=self._index, content_index=0, part=_text_part(""))]

    def _close(self) -> list[dict[str, Any]]:
        kind, text, index = self._open, self._text, self._index
        if kind is None:
            return []
        self._open = None
        if kind == "reasoning":
            return [self.event("response.reasoning_text.done", item_id=self.reasoning_id,
                                output_index=index, content_index=0, text=text),
                    self.event("response.output_item.done", output_index=index,
                                item=_reasoning_item(self.reasoning_id, text))]
        self._message_done = True
        return [self.event("response.output_text.done", item_id=self.message_id,
                            output_index=index, content_index=0, text=text, logprobs=[]),
                self.event("response.content_part.done", item_id=self.message_id,
                            output_index=index, content_index=0, part=_text_part(text)),
                self.event("response.output_item.done", output_index=index,
                            item=_message_item(self.message_id, text, "completed"))]

    def _tool_call(self, call: ToolCall) -> list[dict[str, Any]]:
        self._calls += 1
        self._index += 1
        index, item_id = self._index, self._call_id(call)
        out = [self.event("response.output_item.added", output_index=index,
                           item=_call_item(item_id, call, "in_progress"))]
        args = call.arguments
        for at in range(0, len(args), ARGUMENT_PIECE):
            out.append(self.event("response.function_call_arguments.delta", item_id=item_id,
                                   output_index=index, delta=args[at:at + ARGUMENT_PIECE]))
        out.append(self.event("response.function_call_arguments.done", item_id=item_id,
                               output_index=index, name=call.name, arguments=args))
        out.append(self.event("response.output_item.done", output_index=index,
                               item=_call_item(item_id, call, "completed")))
        return out

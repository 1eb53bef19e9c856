"""Reply events -> OpenAI chat/completions stream chunks, and a folded Reply -> one body."""

from __future__ import annotations

import time
import uuid
from typing import Any

from app.services.events import (
    ChoiceDone,
    ChoiceReply,
    ContentDelta,
    Done,
    ReasoningDelta,
    Reply,
    ReplyEvent,
    ToolCallDone,
    Usage,
)
from app.services.logprob_format import chat_logprobs, completion_logprobs

ARGUMENT_PIECE = 24  # characters of function.arguments per streamed delta


def usage_of(usage: Usage) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
        "prompt_tokens_details": {"cached_tokens": usage.cached_tokens},
    }


def timings_of(usage: Usage) -> dict[str, Any]:
    decode_s = usage.decode_ms / 1000
    return {
        "queue_ms": round(usage.queue_ms, 3),
        "prompt_n": usage.prompt_tokens - usage.cached_tokens,
        "prompt_ms": round(usage.prompt_ms, 3),
        "predicted_n": usage.completion_tokens,
        "predicted_ms": round(usage.decode_ms, 3),
        "predicted_per_second": (round(usage.completion_tokens / decode_s, 3)
                                 if decode_s else None),
    }


class _Renderer:
    prefix = "cmpl"
    chunk_object = ""
    object = ""

    def __init__(self, model: str, n: int, include_usage: bool, logprobs: bool = False) -> None:
        self.id = f"{self.prefix}-{uuid.uuid4().hex}"
        self.model = model
        self.n = n
        self.include_usage = include_usage
        self.logprobs = logprobs
        self.created = int(time.time())

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": self.chunk_object, "created": self.created,
                "model": self.model, "choices": choices}

    def _done(self, event: Done) -> list[dict[str, Any]]:
        if not self.include_usage:
            return []
        chunk = self._chunk([])
        chunk["usage"] = usage_of(event.usage)
        chunk["timings"] = timings_of(event.usage)
        return [chunk]

    def _response(self, choices: list[dict[str, Any]], reply: Reply) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": self.object, "created": self.created,
                               "model": self.model, "choices": choices}
        if reply.usage is not None:
            out["usage"] = usage_of(reply.usage)
            out["timings"] = timings_of(reply.usage)
        return out


class ChatRenderer(_Renderer):
    prefix = "chatcmpl"
    chunk_object = "chat.completion.chunk"
    object = "chat.completion"

    def opening(self) -> list[dict[str, Any]]:
        return [self._chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                              "logprobs": None, "finish_reason": None}]) for i in range(self.n)]

    def _delta(self, index: int, delta: dict[str, Any], logprobs: tuple[Any, ...] = (),
               finish: str | None = None) -> dict[str, Any]:
        out = chat_logprobs(list(logprobs)) if self.logprobs and logprobs else None
        return self._chunk([{"index": index, "delta": delta, "logprobs": out,
                             "finish_reason": finish}])

    def render(self, event: ReplyEvent) -> list[dict[str, Any]]:
        if isinstance(event, ContentDelta):
            return [self._delta(event.index, {"content": event.text}, event.logprobs)]
        if isinstance(event, ReasoningDelta):
            return [self._delta(event.index, {"reasoning_content": event.text}, event.logprobs)]
        if isinstance(event, ToolCallDone):
            call, i = event.call, event.position
            head = {"index": i, "id": call.id, "type": "function",
                    "function": {"name": call.name, "arguments": ""}}
            out = [self._delta(event.index, {"tool_calls": [head]})]
            args = call.arguments
            for at in range(0, len(args), ARGUMENT_PIECE):
                piece = {"index": i, "function": {"arguments": args[at:at + ARGUMENT_PIECE]}}
                out.append(self._delta(event.index, {"tool_calls": [piece]}))
            return out
        if isinstance(event, ChoiceDone):
            return [self._delta(event.index, {}, event.logprobs, event.finish_reason)]
        if isinstance(event, Done):
            return self._done(event)
        return []

    def _message(self, choice: ChoiceReply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": choice.content}
        if choice.reasoning is not None:
            message["reasoning_content"] = message["reasoning"] = choice.reasoning
        if choice.tool_calls:
            message["content"] = choice.content or None
            message["tool_calls"] = [c.to_openai() for c in choice.tool_calls]
        return message

    def response(self, reply: Reply) -> dict[str, Any]:
        choices = [{"index": c.index, "message": self._message(c),
                    "logprobs": chat_logprobs(c.logprobs) if self.logprobs else None,
                    "finish_reason": c.finish_reason} for c in reply.choices]
        return self._response(choices, reply)


class CompletionRenderer(_Renderer):
    prefix = "cmpl"
    chunk_object = "text_completion"
    object = "text_completion"

    def __init__(self, model: str, n: int, include_usage: bool, echo: str = "",
                 logprobs: bool = False) -> None:
        super().__init__(model, n, include_usage, logprobs)
        self.echo = echo
        self._offsets = dict.fromkeys(range(n), len(echo))  # text offset of the next delta

    def opening(self) -> list[dict[str, Any]]:
        if not self.echo:
            return []
        return [self._chunk([{"index": i, "text": self.echo, "logprobs": None,
                              "finish_reason": None}]) for i in range(self.n)]

    def render(self, event: ReplyEvent) -> list[dict[str, Any]]:
        if isinstance(event, ContentDelta):
            logprobs = None
            if self.logprobs:
                logprobs = completion_logprobs(list(event.logprobs), self._offsets[event.index])
                self._offsets[event.index] += len(event.text)
            return [self._chunk([{"index": event.index, "text": event.text,
                                  "logprobs": logprobs, "finish_reason": None}])]
        if isinstance(event, ChoiceDone):
            return [self._chunk([{"index": event.index, "text": "", "logprobs": None,
                                  "finish_reason": event.finish_reason}])]
        if isinstance(event, Done):
            return self._done(event)
        return []

    def response(self, reply: Reply) -> dict[str, Any]:
        choices = [{"index": c.index, "text": self.echo + c.content,
                    "logprobs": (completion_logprobs(c.logprobs, len(self.echo))
                                 if self.logprobs else None),
                    "finish_reason": c.finish_reason} for c in reply.choices]
        return self._response(choices, reply)


OpenAIRenderer = ChatRenderer | CompletionRenderer

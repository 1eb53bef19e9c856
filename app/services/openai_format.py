"""Engine events -> OpenAI response bodies and stream chunks (chat and completions)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.engine.client import Accepted, ChoiceEnd, Finished, TextDelta, TokenLogprob
from app.services.logprob_format import chat_logprobs, completion_logprobs
from app.services.reasoning import OPEN, Part, ThinkStream, split_reasoning
from app.services.tool_calls import Parsed, ToolStream, parse_tool_calls

ARGUMENT_PIECE = 24  # characters of function.arguments per streamed delta


def usage_of(done: Finished) -> dict[str, Any]:
    return {
        "prompt_tokens": done.prompt_tokens,
        "completion_tokens": done.completion_tokens,
        "total_tokens": done.prompt_tokens + done.completion_tokens,
        "prompt_tokens_details": {"cached_tokens": done.cached_tokens},
    }


def timings_of(done: Finished) -> dict[str, Any]:
    decode_s = done.decode_ms / 1000
    prefill = done.prompt_tokens - done.cached_tokens
    return {
        "queue_ms": round(done.queue_ms, 3),
        "prompt_n": prefill,
        "prompt_ms": round(done.prompt_ms, 3),
        "predicted_n": done.completion_tokens,
        "predicted_ms": round(done.decode_ms, 3),
        "predicted_per_second": round(done.completion_tokens / decode_s, 3) if decode_s else None,
    }


@dataclass
class Collected:
    """A whole (non-streamed) generation."""

    texts: dict[int, list[str]] = field(default_factory=dict)
    logprobs: dict[int, list[TokenLogprob]] = field(default_factory=dict)
    finish: dict[int, str] = field(default_factory=dict)
    done: Finished | None = None
    thinking_opened: bool = False

    def add(self, event: object) -> None:
        if isinstance(event, Accepted):
            self.thinking_opened = event.thinking_opened
        elif isinstance(event, TextDelta):
            self.texts.setdefault(event.index, []).append(event.text)
            self.logprobs.setdefault(event.index, []).extend(event.logprobs)
        elif isinstance(event, ChoiceEnd):
            self.finish[event.index] = event.finish_reason
        elif isinstance(event, Finished):
            self.done = event

    def text(self, index: int) -> str:
        return "".join(self.texts.get(index, ()))


class _Format:
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

    def accepted(self, event: Accepted) -> None:
        """The request was accepted by the worker (nothing to send by default)."""

    def usage_chunk(self, done: Finished) -> dict[str, Any] | None:
        if not self.include_usage:
            return None
        chunk = self._chunk([])
        chunk["usage"] = usage_of(done)
        chunk["timings"] = timings_of(done)
        return chunk

    def _response(self, choices: list[dict[str, Any]], got: Collected) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "object": self.object, "created": self.created,
                               "model": self.model, "choices": choices}
        if got.done is not None:
            out["usage"] = usage_of(got.done)
            out["timings"] = timings_of(got.done)
        return out


class ChatFormat(_Format):
    prefix = "chatcmpl"
    chunk_object = "chat.completion.chunk"
    object = "chat.completion"

    def __init__(self, model: str, n: int, include_usage: bool,
                 tool_names: list[str] | None = None, logprobs: bool = False,
                 one_call: bool = False, include_reasoning: bool = True) -> None:
        super().__init__(model, n, include_usage, logprobs)
        self.include_reasoning = include_reasoning  # False: thinking is dropped, not sent
        self.tool_names = tool_names  # None: tool calls are not parsed
        self.one_call = one_call  # parallel_tool_calls=false: keep the first call only
        self._tools = {i: ToolStream(tool_names) for i in range(n)} if tool_names else {}
        self._unsent: dict[int, list[TokenLogprob]] = {}  # logprobs of held text
        self._think = {i: ThinkStream() for i in range(n)}

    def accepted(self, event: Accepted) -> None:
        """The prompt ended inside <think>: every reply starts in its reasoning."""
        if event.thinking_opened:
            for stream in self._think.values():
                stream.push(OPEN)

    def opening(self) -> list[dict[str, Any]]:
        return [self._chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                              "logprobs": None, "finish_reason": None}]) for i in range(self.n)]

    def _logprobs_out(self, index: int) -> dict[str, Any] | None:
        entries = self._unsent.pop(index, None)
        return chat_logprobs(entries) if self.logprobs and entries else None

    def _delta(self, index: int, delta: dict[str, Any],
               finish: str | None = None) -> dict[str, Any]:
        return self._chunk([{"index": index, "delta": delta,
                             "logprobs": self._logprobs_out(index), "finish_reason": finish}])

    def delta(self, event: TextDelta) -> list[dict[str, Any]]:
        if event.logprobs:
            self._unsent.setdefault(event.index, []).extend(event.logprobs)
        return self._parts(event.index, self._think[event.index].push(event.text))

    def _parts(self, index: int, parts: list[Part]) -> list[dict[str, Any]]:
        out = []
        tools = self._tools.get(index)
        for kind, text in parts:
            if kind == "reasoning":
                if self.include_reasoning:
                    out.append(self._delta(index, {"reasoning_content": text}))
                continue
            shown = text if tools is None else tools.push(text)
            if shown:
                out.append(self._delta(index, {"content": shown}))
        return out

    def end(self, event: ChoiceEnd) -> list[dict[str, Any]]:
        out = self._parts(event.index, self._think[event.index].flush())
        reason = event.finish_reason
        tools = self._tools.get(event.index)
        if tools is not None:
            parsed = self._limit(tools.finish())
            if parsed.content:
                out.append(self._delta(event.index, {"content": parsed.content}))
            for i, call in enumerate(parsed.calls):
                head = {"index": i, "id": call.id, "type": "function",
                        "function": {"name": call.name, "arguments": ""}}
                out.append(self._delta(event.index, {"tool_calls": [head]}))
                args = call.arguments
                for at in range(0, len(args), ARGUMENT_PIECE):
                    piece = {"index": i, "function": {"arguments": args[at:at + ARGUMENT_PIECE]}}
                    out.append(self._delta(event.index, {"tool_calls": [piece]}))
            if parsed.calls:
                reason = "tool_calls"
        out.append(self._delta(event.index, {}, reason))
        return out

    def _limit(self, parsed: Parsed) -> Parsed:
        if self.one_call and len(parsed.calls) > 1:
            return Parsed(parsed.content, parsed.calls[:1])
        return parsed

    def _message(self, text: str, finish: str,
                 thinking_opened: bool) -> tuple[dict[str, Any], str]:
        reasoning, text = split_reasoning(OPEN + text if thinking_opened else text)
        parsed = self._limit(parse_tool_calls(text, self.tool_names) if self.tool_names
                             else Parsed(text, []))
        message: dict[str, Any] = {"role": "assistant", "content": text}
        if reasoning is not None and self.include_reasoning:
            message["reasoning_content"] = message["reasoning"] = reasoning
        if not parsed.calls:
            return message, finish
        message["content"] = parsed.content
        message["tool_calls"] = [c.to_openai() for c in parsed.calls]
        return message, "tool_calls"

    def response(self, got: Collected) -> dict[str, Any]:
        choices = []
        for i in range(self.n):
            message, finish = self._message(got.text(i), got.finish.get(i, "stop"),
                                            got.thinking_opened)
            logprobs = chat_logprobs(got.logprobs.get(i, [])) if self.logprobs else None
            choices.append({"index": i, "message": message, "logprobs": logprobs,
                            "finish_reason": finish})
        return self._response(choices, got)


class CompletionFormat(_Format):
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

    def delta(self, event: TextDelta) -> list[dict[str, Any]]:
        logprobs = None
        if self.logprobs:
            logprobs = completion_logprobs(event.logprobs, self._offsets[event.index])
            self._offsets[event.index] += len(event.text)
        return [self._chunk([{"index": event.index, "text": event.text, "logprobs": logprobs,
                              "finish_reason": None}])]

    def end(self, event: ChoiceEnd) -> list[dict[str, Any]]:
        return [self._chunk([{"index": event.index, "text": "", "logprobs": None,
                              "finish_reason": event.finish_reason}])]

    def response(self, got: Collected) -> dict[str, Any]:
        choices = [{"index": i, "text": self.echo + got.text(i),
                    "logprobs": (completion_logprobs(got.logprobs.get(i, []), len(self.echo))
                                 if self.logprobs else None),
                    "finish_reason": got.finish.get(i, "stop")} for i in range(self.n)]
        return self._response(choices, got)


Format = ChatFormat | CompletionFormat

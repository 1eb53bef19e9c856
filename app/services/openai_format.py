"""Engine events -> OpenAI response bodies and stream chunks (chat and completions)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from app.engine.client import ChoiceEnd, Finished, TextDelta


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
    finish: dict[int, str] = field(default_factory=dict)
    done: Finished | None = None

    def add(self, event: object) -> None:
        if isinstance(event, TextDelta):
            self.texts.setdefault(event.index, []).append(event.text)
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

    def __init__(self, model: str, n: int, include_usage: bool) -> None:
        self.id = f"{self.prefix}-{uuid.uuid4().hex}"
        self.model = model
        self.n = n
        self.include_usage = include_usage
        self.created = int(time.time())

    def _chunk(self, choices: list[dict[str, Any]]) -> dict[str, Any]:
        return {"id": self.id, "object": self.chunk_object, "created": self.created,
                "model": self.model, "choices": choices}

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

    def opening(self) -> list[dict[str, Any]]:
        return [self._chunk([{"index": i, "delta": {"role": "assistant", "content": ""},
                              "logprobs": None, "finish_reason": None}]) for i in range(self.n)]

    def delta(self, event: TextDelta) -> dict[str, Any]:
        return self._chunk([{"index": event.index, "delta": {"content": event.text},
                             "logprobs": None, "finish_reason": None}])

    def end(self, event: ChoiceEnd) -> dict[str, Any]:
        return self._chunk([{"index": event.index, "delta": {}, "logprobs": None,
                             "finish_reason": event.finish_reason}])

    def response(self, got: Collected) -> dict[str, Any]:
        choices = [{"index": i, "message": {"role": "assistant", "content": got.text(i)},
                    "logprobs": None, "finish_reason": got.finish.get(i, "stop")}
                   for i in range(self.n)]
        return self._response(choices, got)


class CompletionFormat(_Format):
    prefix = "cmpl"
    chunk_object = "text_completion"
    object = "text_completion"

    def __init__(self, model: str, n: int, include_usage: bool, echo: str = "") -> None:
        super().__init__(model, n, include_usage)
        self.echo = echo

    def opening(self) -> list[dict[str, Any]]:
        if not self.echo:
            return []
        return [self._chunk([{"index": i, "text": self.echo, "logprobs": None,
                              "finish_reason": None}]) for i in range(self.n)]

    def delta(self, event: TextDelta) -> dict[str, Any]:
        return self._chunk([{"index": event.index, "text": event.text, "logprobs": None,
                             "finish_reason": None}])

    def end(self, event: ChoiceEnd) -> dict[str, Any]:
        return self._chunk([{"index": event.index, "text": "", "logprobs": None,
                             "finish_reason": event.finish_reason}])

    def response(self, got: Collected) -> dict[str, Any]:
        choices = [{"index": i, "text": self.echo + got.text(i), "logprobs": None,
                    "finish_reason": got.finish.get(i, "stop")} for i in range(self.n)]
        return self._response(choices, got)


Format = ChatFormat | CompletionFormat

"""Engine events -> reply events (pure): reasoning split, tool-call parsing, logprob carry.

One `ReplyStream` per request. It is the only place that interprets the model's text, for
streamed and non-streamed replies alike (the latter fold these events, see events.Reply).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.engine.schema import Accepted, ChoiceEnd, Event, Finished, TextDelta, TokenLogprob
from app.services.events import (
    ChoiceDone,
    ContentDelta,
    Done,
    FinishReason,
    ReasoningDelta,
    ReplyEvent,
    Started,
    ToolCallDone,
    Usage,
)
from app.services.reasoning import OPEN, Part, ThinkStream
from app.services.tool_calls import ToolStream


@dataclass(frozen=True)
class ReplyOptions:
    """How to read the model's text."""

    n: int = 1  # choices
    reasoning: bool = False  # split a leading <think>...</think> off as reasoning
    include_reasoning: bool = True  # False: reasoning is dropped, not sent
    tool_names: tuple[str, ...] | None = None  # parse tool calls of these tools
    one_call: bool = False  # keep only the first tool call (parallel_tool_calls=false)


class _Choice:
    def __init__(self, options: ReplyOptions) -> None:
        self.think = ThinkStream() if options.reasoning else None
        self.tools = ToolStream(options.tool_names) if options.tool_names else None
        self.unsent: list[TokenLogprob] = []  # logprobs of text not shown yet


class ReplyStream:
    def __init__(self, options: ReplyOptions) -> None:
        self.options = options
        self._choices = [_Choice(options) for _ in range(options.n)]

    def feed(self, event: Event) -> list[ReplyEvent]:
        """Reply events for one engine event (Failed is the caller's business)."""
        if isinstance(event, Accepted):
            if event.thinking_opened:  # the prompt ended inside <think>
                for choice in self._choices:
                    if choice.think is not None:
                        choice.think.push(OPEN)
            return [Started(event.prompt_tokens, event.cached_tokens)]
        if isinstance(event, TextDelta):
            choice = self._choices[event.index]
            choice.unsent.extend(event.logprobs)
            parts: list[Part] = (choice.think.push(event.text) if choice.think is not None
                                 else [("content", event.text)] if event.text else [])
            return self._parts(event.index, parts)
        if isinstance(event, ChoiceEnd):
            return self._end(event)
        if isinstance(event, Finished):
            return [Done(Usage(event.prompt_tokens, event.cached_tokens,
                               event.completion_tokens, event.queue_ms, event.prompt_ms,
                               event.decode_ms))]
        return []

    def _take(self, index: int) -> tuple[TokenLogprob, ...]:
        choice = self._choices[index]
        out, choice.unsent = tuple(choice.unsent), []
        return out

    def _parts(self, index: int, parts: list[Part]) -> list[ReplyEvent]:
        out: list[ReplyEvent] = []
        tools = self._choices[index].tools
        for kind, text in parts:
            if kind == "reasoning":
                if self.options.include_reasoning:
                    out.append(ReasoningDelta(index, text, self._take(index)))
                continue
            shown = text if tools is None else tools.push(text)
            if shown:
                out.append(ContentDelta(index, shown, self._take(index)))
        return out

    def _end(self, event: ChoiceEnd) -> list[ReplyEvent]:
        index = event.index
        choice = self._choices[index]
        out = self._parts(index, choice.think.flush()) if choice.think is not None else []
        reason: FinishReason = "length" if event.finish_reason == "length" else "stop"
        if choice.tools is not None:
            parsed = choice.tools.finish()
            calls = parsed.calls[:1] if self.options.one_call else parsed.calls
            if parsed.content:
                out.append(ContentDelta(index, parsed.content, self._take(index)))
            out.extend(ToolCallDone(index, i, call) for i, call in enumerate(calls))
            if calls:
                reason = "tool_calls"
        stop = event.stop_sequence if reason == "stop" else None
        out.append(ChoiceDone(index, reason, event.completion_tokens, self._take(index), stop))
        return out

"""What a generation produces, for every protocol family: typed reply events and their fold.

A protocol adapter streams a reply by rendering each `ReplyEvent` as it comes, and answers a
non-streamed request by rendering the `Reply` that `Reply.add` folds from the very same
events. There is no second code path: a non-streamed reply is the stream, collected.

Order of events: `Started`, then per choice any number of `ReasoningDelta` / `ContentDelta`,
then its `ToolCallDone`s and one `ChoiceDone` (choices may interleave), then `Done`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from app.engine.schema import TokenLogprob
from app.services.tool_calls import ToolCall

FinishReason = Literal["stop", "length", "tool_calls"]


@dataclass(frozen=True)
class Started:
    """The worker accepted the request: the prompt is tokenized and fits."""

    prompt_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class ReasoningDelta:
    """Text of choice `index` inside `<think>...</think>` (the model's reasoning)."""

    index: int
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class ContentDelta:
    """Visible text of choice `index`."""

    index: int
    text: str
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True)
class ToolCallDone:
    """Choice `index` called a tool (its `position`-th call); sent whole when the choice ends."""

    index: int
    position: int
    call: ToolCall


@dataclass(frozen=True)
class ChoiceDone:
    """Choice `index` ended; `logprobs` are of tokens whose text was held back (markup)."""

    index: int
    finish_reason: FinishReason
    completion_tokens: int
    logprobs: tuple[TokenLogprob, ...] = ()
    stop_sequence: str | None = None  # the stop string that ended it (Anthropic reports it)


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    queue_ms: float = 0.0
    prompt_ms: float = 0.0
    decode_ms: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Done:
    """Every choice ended."""

    usage: Usage


ReplyEvent = Started | ReasoningDelta | ContentDelta | ToolCallDone | ChoiceDone | Done


@dataclass
class ChoiceReply:
    """One choice, whole."""

    index: int
    content: str = ""
    reasoning: str | None = None  # None: the reply had no reasoning
    tool_calls: list[ToolCall] = field(default_factory=list)
    finish_reason: FinishReason = "stop"
    completion_tokens: int = 0
    logprobs: list[TokenLogprob] = field(default_factory=list)
    stop_sequence: str | None = None


@dataclass
class Reply:
    """The fold of a stream of reply events: `for e in events: reply.add(e)`."""

    n: int
    choices: list[ChoiceReply] = field(default_factory=list)
    prompt_tokens: int = 0
    cached_tokens: int = 0
    usage: Usage | None = None

    def __post_init__(self) -> None:
        if not self.choices:
            self.choices = [ChoiceReply(i) for i in range(self.n)]

    def add(self, event: ReplyEvent) -> None:
        if isinstance(event, Started):
            self.prompt_tokens, self.cached_tokens = event.prompt_tokens, event.cached_tokens
        elif isinstance(event, ContentDelta):
            choice = self.choices[event.index]
            choice.content += event.text
            choice.logprobs.extend(event.logprobs)
        elif isinstance(event, ReasoningDelta):
            choice = self.choices[event.index]
            choice.reasoning = (choice.reasoning or "") + event.text
            choice.logprobs.extend(event.logprobs)
        elif isinstance(event, ToolCallDone):
            self.choices[event.index].tool_calls.append(event.call)
        elif isinstance(event, ChoiceDone):
            choice = self.choices[event.index]
            choice.finish_reason = event.finish_reason
            choice.completion_tokens = event.completion_tokens
            choice.logprobs.extend(event.logprobs)
            choice.stop_sequence = event.stop_sequence
        elif isinstance(event, Done):
            self.usage = event.usage

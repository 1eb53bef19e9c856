"""The non-streamed reply is the fold of the stream, whatever the chunking (property test)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from app.engine.schema import Accepted, ChoiceEnd, Event, Finished, TextDelta
from app.services.events import Reply
from app.services.reasoning import split_reasoning
from app.services.reply import ReplyOptions, ReplyStream

TOOLS = ("get_weather",)
CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
PIECES = ["<think>", "</think>", "<th", "ink>", "</", " ", "\n", " \n", "hmm", "2+2", "It is 4.",
          "<tool_call>", CALL, '{"name": "get_weather", "arguments": {}}', "{", "}", "x"]


def _events(chunks: list[str], thinking_opened: bool = False) -> list[Event]:
    out: list[Event] = [Accepted(3, 0, thinking_opened)]
    out += [TextDelta(0, c, 1) for c in chunks]
    out += [ChoiceEnd(0, "stop", len(chunks)), Finished(3, 0, len(chunks), 0, 0, 0)]
    return out


def fold(chunks: list[str], options: ReplyOptions, opened: bool = False) -> Reply:
    stream = ReplyStream(options)
    reply = Reply(options.n)
    for event in _events(chunks, opened):
        for out in stream.feed(event):
            reply.add(out)
    return reply


def summary(reply: Reply) -> tuple[str, str | None, list[tuple[str, object]], str]:
    c = reply.choices[0]
    return (c.content, c.reasoning, [(t.name, json.loads(t.arguments)) for t in c.tool_calls],
            c.finish_reason)


def rechunk(text: str, cuts: list[int]) -> list[str]:
    points = sorted({min(max(c, 0), len(text)) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False) if b > a]


texts = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)
cut_lists = st.lists(st.integers(0, 400), max_size=30)
option_sets = st.sampled_from([
    ReplyOptions(reasoning=True), ReplyOptions(reasoning=True, tool_names=TOOLS),
    ReplyOptions(tool_names=TOOLS), ReplyOptions(),
    ReplyOptions(reasoning=True, tool_names=TOOLS, one_call=True),
])


@settings(max_examples=400, deadline=None)
@given(texts, cut_lists, cut_lists, option_sets, st.booleans())
def test_any_chunking_gives_the_same_reply(text: str, cuts_a: list[int], cuts_b: list[int],
                                           options: ReplyOptions, opened: bool) -> None:
    a = summary(fold(rechunk(text, cuts_a), options, opened))
    b = summary(fold(rechunk(text, cuts_b), options, opened))
    whole = summary(fold([text] if text else [], options, opened))
    assert a == b == whole


@settings(max_examples=300, deadline=None)
@given(texts, cut_lists)
def test_streamed_reasoning_matches_the_whole_text_split(text: str, cuts: list[int]) -> None:
    content, reasoning, _, _ = summary(fold(rechunk(text, cuts), ReplyOptions(reasoning=True)))
    want_reasoning, want_content = split_reasoning(text)
    assert content == want_content
    assert (reasoning or None) == (want_reasoning or None)


def test_trailing_whitespace_of_reasoning_is_not_streamed() -> None:
    """The case of issue 13: non-streamed 'hmm, 2+2', streamed 'hmm, 2+2 \\n'."""
    tokens = ["<think>", "\n", "hmm", ",", " 2", "+", "2", " \n", "</think>", "\n\n", "It is 4."]
    stream = ReplyStream(ReplyOptions(reasoning=True))
    reasoning = ""
    for event in _events(tokens):
        for out in stream.feed(event):
            reasoning += getattr(out, "text", "") if type(out).__name__ == "ReasoningDelta" else ""
    assert reasoning == "hmm, 2+2"
    assert summary(fold(tokens, ReplyOptions(reasoning=True)))[:2] == ("It is 4.", "hmm, 2+2")

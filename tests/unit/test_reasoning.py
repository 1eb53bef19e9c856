"""<think> splitting, whole and streamed."""

from __future__ import annotations

import pytest

from app.services.reasoning import ThinkStream, split_reasoning


@pytest.mark.parametrize(
    ("text", "reasoning", "content"),
    [
        ("<think>\nhmm, 2+2\n</think>\n\nIt is 4.", "hmm, 2+2", "It is 4."),
        ("  <think>short</think>ok", "short", "ok"),
        ("<think>cut before the end", "cut before the end", ""),
        ("No thinking here.", None, "No thinking here."),
        ("I <think> mid-text", None, "I <think> mid-text"),
    ],
)
def test_split(text: str, reasoning: str | None, content: str) -> None:
    assert split_reasoning(text) == (reasoning, content)


def _stream(pieces: list[str]) -> tuple[str, str]:
    ts = ThinkStream()
    parts = [p for piece in pieces for p in ts.push(piece)] + ts.flush()
    return ("".join(t for k, t in parts if k == "reasoning"),
            "".join(t for k, t in parts if k == "content"))


def test_stream_splits_across_pieces() -> None:
    assert _stream(["<th", "ink>", "let me", " see</th", "ink>\n", "\n", "Yes."]) == (
        "let me see", "Yes.")


def test_stream_plain_and_lookalike() -> None:
    assert _stream(["Hello", " there"]) == ("", "Hello there")
    assert _stream(["<th", "ere>"]) == ("", "<there>")
    assert _stream(["<think>never closed"]) == ("never closed", "")

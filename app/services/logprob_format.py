"""Token log-probabilities in the OpenAI shapes of chat and of (legacy) completions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.engine.client import TokenLogprob


def _text(token: bytes) -> str:
    return token.decode("utf-8", errors="replace")


def _chat_one(token: bytes, logprob: float) -> dict[str, Any]:
    return {"token": _text(token), "logprob": logprob, "bytes": list(token)}


def chat_logprobs(entries: Sequence[TokenLogprob]) -> dict[str, Any]:
    """`choices[i].logprobs` of chat: {"content": [{token, logprob, bytes, top_logprobs}]}."""
    return {"content": [
        {**_chat_one(e.token, e.logprob), "top_logprobs": [_chat_one(t, lp) for t, lp in e.top]}
        for e in entries]}


def completion_logprobs(entries: Sequence[TokenLogprob], offset: int) -> dict[str, Any]:
    """`choices[i].logprobs` of completions; text offsets start at `offset`."""
    tokens = [_text(e.token) for e in entries]
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    top: list[dict[str, float]] = []
    for e in entries:
        alternatives: dict[str, float] = {}
        for t, lp in e.top:
            alternatives.setdefault(_text(t), lp)
        top.append(alternatives)
    return {"tokens": tokens, "token_logprobs": [e.logprob for e in entries],
            "top_logprobs": top, "text_offset": offsets}

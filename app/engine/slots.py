"""Sequence slots of the shared context and the choice of slots for a new request (pure)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

_CHUNK = 64


@dataclass
class Slot:
    """One llama.cpp sequence id; `tokens` are exactly the tokens its KV cache holds."""

    seq: int
    tokens: list[int] = field(default_factory=list)
    busy: bool = False
    last_used: int = 0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """Length of the longest common prefix of two token lists."""
    n = min(len(a), len(b))
    i = 0
    while i + _CHUNK <= n and a[i : i + _CHUNK] == b[i : i + _CHUNK]:
        i += _CHUNK
    while i < n and a[i] == b[i]:
        i += 1
    return i


def pick_slots(slots: Sequence[Slot], prompt: Sequence[int], n: int) -> list[Slot] | None:
    """Free slots for a request with `n` choices, or None if fewer than `n` are free.

    The first slot (which gets the prefill) is the free slot sharing the longest prefix
    with `prompt`; the others prefer empty, then least recently used slots, so the caches
    most likely to be reused survive.
    """
    free = [s for s in slots if not s.busy]
    if len(free) < n:
        return None
    first = max(
        free,
        key=lambda s: (common_prefix(s.tokens, prompt), not s.tokens, -s.last_used),
    )
    rest = sorted((s for s in free if s is not first), key=lambda s: (bool(s.tokens), s.last_used))
    return [first, *rest[: n - 1]]

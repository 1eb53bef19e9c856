"""Live per-model figures for the web page (GET /events): tokens/s, requests, recent TTFTs.

Fed by the RequestTracker that also records the Prometheus metrics (app/metrics.py), so the
page and /metrics count the same events. A Prometheus registry only keeps totals; the page
needs rates over the last seconds and the last few requests, which are kept here.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

GENERATION_WINDOW = 3.0  # seconds of generated tokens behind the tokens/s figure
PREFILL_WINDOW = 10.0  # seconds of finished prefills behind the prompt tokens/s figure
RECENT = 20  # finished requests kept for the page


@dataclass
class _Model:
    generated: deque[tuple[float, int]] = field(default_factory=deque)  # (time, tokens)
    prefills: deque[tuple[float, int, float]] = field(default_factory=deque)  # (end, tok, s)
    busy_since: float | None = None  # start of the current run of generated tokens
    running: int = 0
    waiting: int = 0
    generation_total: int = 0
    prompt_total: int = 0
    requests_total: int = 0


@dataclass(frozen=True)
class Finished:
    """One finished request as the page lists it."""

    model: str
    status: str
    ended_at: float  # unix seconds
    ttft: float | None  # seconds from arrival to the first token
    queue: float | None  # seconds from arrival to the start of prefill
    prompt_tokens: int
    generated_tokens: int
    duration: float  # seconds from arrival to the end

    def to_dict(self) -> dict[str, Any]:
        decode = self.duration - self.ttft if self.ttft is not None else 0.0
        return {
            "model": self.model, "status": self.status, "ended_at": self.ended_at,
            "ttft_seconds": self.ttft, "queue_seconds": self.queue,
            "prompt_tokens": self.prompt_tokens, "generated_tokens": self.generated_tokens,
            "duration_seconds": self.duration,
            "tokens_per_second": (self.generated_tokens - 1) / decode
            if decode > 0 and self.generated_tokens > 1 else None,
        }


class LiveStats:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._wall = wall
        self._models: dict[str, _Model] = {}
        self._recent: deque[Finished] = deque(maxlen=RECENT)

    def _m(self, model: str) -> _Model:
        return self._models.setdefault(model, _Model())

    # ---- fed by RequestTracker ---------------------------------------------------------

    def arrived(self, model: str) -> None:
        self._m(model).waiting += 1

    def left(self, model: str, state: str) -> None:
        """A request stopped waiting ("waiting") or generating ("running")."""
        m = self._m(model)
        if state == "waiting":
            m.waiting -= 1
        elif state == "running":
            m.running -= 1

    def started(self, model: str, prompt_tokens: int) -> None:
        m = self._m(model)
        m.running += 1
        m.prompt_total += prompt_tokens

    def prefilled(self, model: str, tokens: int, seconds: float) -> None:
        """A prompt's uncached ``tokens`` took ``seconds`` from prefill start to first token."""
        if tokens > 0 and seconds > 0:
            self._m(model).prefills.append((self._clock(), tokens, seconds))

    def generated(self, model: str, tokens: int) -> None:
        m = self._m(model)
        now = self._clock()
        self._prune(m, now)
        if not m.generated:
            m.busy_since = now
        m.generated.append((now, tokens))
        m.generation_total += tokens

    def finished(self, record: Finished) -> None:
        self._m(record.model).requests_total += 1
        self._recent.append(record)

    # ---- read by GET /events -----------------------------------------------------------

    def _prune(self, m: _Model, now: float) -> None:
        while m.generated and m.generated[0][0] < now - GENERATION_WINDOW:
            m.generated.popleft()
        while m.prefills and m.prefills[0][0] < now - PREFILL_WINDOW:
            m.prefills.popleft()

    def model(self, model: str) -> dict[str, Any]:
        m = self._m(model)
        now = self._clock()
        self._prune(m, now)
        generation = 0.0
        if m.generated and m.busy_since is not None:
            # a stream that began less than a window ago is measured over its own age
            span = max(min(GENERATION_WINDOW, now - m.busy_since), 0.5)
            generation = sum(n for _, n in m.generated) / span
        prefill_s = sum(s for _, _, s in m.prefills)
        prompt = sum(n for _, n, _ in m.prefills) / prefill_s if prefill_s else None
        return {
            "generation_tokens_per_second": round(generation, 2),
            "prompt_tokens_per_second": round(prompt, 1) if prompt is not None else None,
            "requests_running": m.running, "requests_waiting": m.waiting,
            "generation_tokens_total": m.generation_total,
            "prompt_tokens_total": m.prompt_total, "requests_total": m.requests_total,
        }

    def recent(self) -> list[dict[str, Any]]:
        """The last finished requests, newest first."""
        return [r.to_dict() for r in reversed(self._recent)]

    def now(self) -> float:
        return self._wall()

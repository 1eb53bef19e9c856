"""The streaming workload: concurrent `/v1/chat/completions` streams, timed per SSE event.

A level of concurrency C runs `rounds` rounds; in each round C streams start together and the
round ends when all have ended. Every request asks for exactly `max_tokens` tokens
(`ignore_eos`/`min_tokens`, per server) at temperature 0 with a fixed seed, with a short prompt
that differs per (level, round, stream) so that no server gains from prefix caching.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

TOPICS = (
    "a lighthouse keeper", "a lost umbrella", "the first snow of winter", "a robot gardener",
    "a night train", "an old map", "a city of bridges", "a cat who reads",
    "a desert well", "a clockmaker", "a paper boat", "a mountain village",
    "a quiet library", "a broken compass", "a summer storm", "a violin in the attic",
)


def prompt_for(level: int, round_index: int, stream_index: int) -> str:
    topic = TOPICS[(stream_index + 3 * round_index + 5 * level) % len(TOPICS)]
    return (f"Request {level}.{round_index}.{stream_index}: write a long, detailed story "
            f"about {topic}.")


@dataclass
class StreamResult:
    """One request: what came back and when (seconds since the level started)."""

    stream_index: int
    round_index: int
    started: float
    status: int | None = None
    error: str | None = None
    first_token: float | None = None
    last_token: float | None = None
    ended: float | None = None
    content_deltas: int = 0
    usage_completion_tokens: int | None = None
    finish_reason: str | None = None
    saw_done: bool = False
    text_chars: int = 0

    max_tokens: int | None = None

    @property
    def token_count_source(self) -> str:
        if self.usage_completion_tokens is not None:
            return "usage"
        if self.finish_reason == "length" and self.max_tokens is not None:
            return "finish_length"
        return "content_deltas"

    @property
    def tokens(self) -> int:
        """Generated tokens: the server's usage count when it sends one; else max_tokens when
        the stream ended with finish_reason "length" (it generated exactly that many); else the
        number of non-empty content deltas (a lower bound: a delta can hold several tokens)."""
        source = self.token_count_source
        if source == "usage" and self.usage_completion_tokens is not None:
            return self.usage_completion_tokens
        if source == "finish_length" and self.max_tokens is not None:
            return self.max_tokens
        return self.content_deltas

    @property
    def ttft(self) -> float | None:
        return None if self.first_token is None else self.first_token - self.started

    @property
    def stream_tokens_per_second(self) -> float | None:
        """Tokens after the first over the time from the first to the last token."""
        if self.first_token is None or self.last_token is None or self.tokens < 2:
            return None
        span = self.last_token - self.first_token
        return (self.tokens - 1) / span if span > 0 else None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(tokens=self.tokens, ttft=self.ttft,
                    stream_tokens_per_second=self.stream_tokens_per_second,
                    token_count_source=self.token_count_source)
        return data


@dataclass
class LevelResult:
    concurrency: int
    rounds: int
    wall_seconds: float
    requests: list[StreamResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        reqs = self.requests
        ok = [r for r in reqs if r.error is None and r.status == 200]
        total_tokens = sum(r.tokens for r in ok)
        ttfts = sorted(t for r in ok if (t := r.ttft) is not None)
        rates = [v for r in ok if (v := r.stream_tokens_per_second) is not None]
        tokens = [r.tokens for r in ok]
        return {
            "concurrency": self.concurrency,
            "requests": len(reqs),
            "errors": len(reqs) - len(ok),
            "no_finish_reason": sum(1 for r in reqs if r.finish_reason is None),
            "finish_reasons": sorted({r.finish_reason or "none" for r in reqs}),
            "tokens_total": total_tokens,
            "tokens_per_request_min": min(tokens) if tokens else None,
            "tokens_per_request_max": max(tokens) if tokens else None,
            "token_count_source": sorted({r.token_count_source for r in ok}),
            "wall_seconds": self.wall_seconds,
            "aggregate_tokens_per_second": total_tokens / self.wall_seconds
            if self.wall_seconds > 0 else None,
            "stream_tokens_per_second_mean": sum(rates) / len(rates) if rates else None,
            "stream_tokens_per_second_p50": percentile(sorted(rates), 50),
            "ttft_p50": percentile(ttfts, 50),
            "ttft_p95": percentile(ttfts, 95),
        }


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Linear-interpolated percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return sorted_values[0]
    pos = (len(sorted_values) - 1) * pct / 100
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


@dataclass
class Workload:
    base_url: str
    model: str
    max_tokens: int
    extra_body: dict[str, Any]
    seed: int = 1234
    request_timeout: float = 300.0

    def body(self, prompt: str) -> dict[str, Any]:
        return {
            "model": self.model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": self.max_tokens,
            "temperature": 0,
            "seed": self.seed,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.extra_body,
        }

    def client(self, concurrency: int) -> httpx.AsyncClient:
        # trust_env=False: never route through a proxy from the environment; loopback only.
        return httpx.AsyncClient(
            base_url=self.base_url, trust_env=False,
            timeout=httpx.Timeout(self.request_timeout, connect=10.0),
            limits=httpx.Limits(max_connections=concurrency + 2,
                                max_keepalive_connections=concurrency + 2),
        )

    async def stream_one(self, client: httpx.AsyncClient, prompt: str, origin: float,
                         stream_index: int, round_index: int) -> StreamResult:
        result = StreamResult(stream_index, round_index, time.perf_counter() - origin,
                              max_tokens=self.max_tokens)
        try:
            async with asyncio.timeout(self.request_timeout):
                await self._consume(client, prompt, origin, result)
        except (httpx.HTTPError, TimeoutError, json.JSONDecodeError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        result.ended = time.perf_counter() - origin
        return result

    async def _consume(self, client: httpx.AsyncClient, prompt: str, origin: float,
                       result: StreamResult) -> None:
        async with client.stream("POST", "/v1/chat/completions", json=self.body(prompt)) as resp:
            result.status = resp.status_code
            if resp.status_code != 200:
                body = (await resp.aread()).decode("utf-8", "replace")
                result.error = f"HTTP {resp.status_code}: {body[:300]}"
                return
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank separators, comments (pings), event: lines
                payload = line[5:].strip()
                if payload == "[DONE]":
                    result.saw_done = True
                    break
                now = time.perf_counter() - origin
                self._event(json.loads(payload), now, result)

    @staticmethod
    def _event(event: dict[str, Any], now: float, result: StreamResult) -> None:
        if "error" in event and not event.get("choices"):
            result.error = f"stream error: {json.dumps(event['error'])[:300]}"
            return
        for choice in event.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                result.content_deltas += 1
                result.text_chars += len(content)
                if result.first_token is None:
                    result.first_token = now
                result.last_token = now
            if choice.get("finish_reason"):
                result.finish_reason = choice["finish_reason"]
        usage = event.get("usage")
        if isinstance(usage, dict) and isinstance(usage.get("completion_tokens"), int):
            result.usage_completion_tokens = usage["completion_tokens"]

    async def warm_up(self) -> StreamResult:
        async with self.client(1) as client:
            return await self.stream_one(client, "Warm-up: say hello.", time.perf_counter(), 0, -1)

    async def run_level(self, concurrency: int, rounds: int) -> LevelResult:
        async with self.client(concurrency) as client:
            origin = time.perf_counter()
            requests: list[StreamResult] = []
            for round_index in range(rounds):
                requests.extend(await self._round(client, concurrency, round_index, origin))
            wall = time.perf_counter() - origin
        return LevelResult(concurrency, rounds, wall, requests)

    async def run_round(self, concurrency: int, round_index: int) -> LevelResult:
        """One round of a level: C streams started together, the round's own prompts (the
        same for every server, so servers taking turns round by round get the same work)."""
        async with self.client(concurrency) as client:
            origin = time.perf_counter()
            requests = await self._round(client, concurrency, round_index, origin)
            wall = time.perf_counter() - origin
        return LevelResult(concurrency, 1, wall, requests)

    async def _round(self, client: httpx.AsyncClient, concurrency: int, round_index: int,
                     origin: float) -> list[StreamResult]:
        batch = [
            self.stream_one(client, prompt_for(concurrency, round_index, i), origin, i,
                            round_index)
            for i in range(concurrency)
        ]
        return list(await asyncio.gather(*batch))

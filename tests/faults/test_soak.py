"""Soak: 200 streams at concurrency 8, a third cut at random points; no leak of slots or RSS."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable

import httpx
import pytest

from tests.e2e.server import Server
from tests.faults.conftest import SMOL, StreamResult, rss_bytes, running

REQUESTS = 200
CONCURRENCY = 8
RSS_FRONT_LIMIT = 64 << 20  # growth allowed over the soak
RSS_WORKER_LIMIT = 128 << 20

pytestmark = pytest.mark.anyio


async def _one(client: httpx.AsyncClient, i: int, rng: random.Random) -> StreamResult | None:
    """One stream; None if this one was cut on purpose."""
    cut_after = rng.randint(1, 6) if rng.random() < 1 / 3 else None
    body = {"model": SMOL, "stream": True, "max_tokens": rng.randint(2, 10),
            "temperature": 0.7, "seed": i, "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": f"Tell me fact number {i} about cats."}]}
    out = StreamResult()
    async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200, await resp.aread()
        async for line in resp.aiter_lines():
            out.feed(line, time.monotonic())
            if cut_after is not None and out.chunks >= cut_after:
                return None  # leaving the block closes the connection mid-stream
    return out


async def _soak(url: str) -> tuple[list[StreamResult], int]:
    rng = random.Random(13)
    sem = asyncio.Semaphore(CONCURRENCY)
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        async def guarded(i: int) -> StreamResult | None:
            async with sem:
                return await _one(client, i, rng)
        results = await asyncio.gather(*(guarded(i) for i in range(REQUESTS)))
    finished = [r for r in results if r is not None]
    return finished, REQUESTS - len(finished)


def _proc_pid(server: Server) -> int:
    return server.process.pid


async def test_soak(server: Server, figures: Callable[[str], None]) -> None:
    httpx.post(server.url + "/models/load", json={"model": SMOL}, timeout=120).raise_for_status()
    info = running(server)
    assert info is not None
    # warm up so allocator pools and caches exist before the baseline
    await _soak_some(server.url, 8)
    front0, worker0 = rss_bytes(_proc_pid(server)), rss_bytes(info["pid"])
    t0 = time.monotonic()
    finished, cut = await _soak(server.url)
    elapsed = time.monotonic() - t0
    for r in finished:
        assert r.error is None, r.error
        assert r.done
        assert r.finish_reason in ("stop", "length")
        assert r.usage is not None
        assert r.usage["completion_tokens"] >= 1
    deadline = time.monotonic() + 5
    while True:
        after = running(server)
        assert after is not None
        if after["slots_busy"] == 0 and after["sequences_active"] == 0:
            break
        assert time.monotonic() < deadline, after
        await asyncio.sleep(0.1)
    assert after["pid"] == info["pid"]  # no worker died
    front1, worker1 = rss_bytes(_proc_pid(server)), rss_bytes(info["pid"])
    growth_front, growth_worker = front1 - front0, worker1 - worker0
    figures(f"soak: {REQUESTS} streams, concurrency {CONCURRENCY}, {cut} cut mid-stream, "
          f"{len(finished)} finished with finish_reason and usage in {elapsed:.1f} s; slots "
          f"busy after: {after['slots_busy']}; RSS growth front {growth_front / 2**20:+.1f} MiB "
          f"({front1 / 2**20:.0f} MiB), worker {growth_worker / 2**20:+.1f} MiB "
          f"({worker1 / 2**20:.0f} MiB)")
    assert cut >= REQUESTS // 5
    assert growth_front < RSS_FRONT_LIMIT
    assert growth_worker < RSS_WORKER_LIMIT


async def _soak_some(url: str, n: int) -> None:
    async with httpx.AsyncClient(base_url=url, timeout=120) as client:
        for i in range(n):
            body = {"model": SMOL, "max_tokens": 8, "seed": i,
                    "messages": [{"role": "user", "content": f"warm {i}"}]}
            resp = await client.post("/v1/chat/completions", content=json.dumps(body),
                                     headers={"content-type": "application/json"})
            assert resp.status_code == 200

"""Throughput of the engine alone (no HTTP): `python -m tests.engine.bench_engine [model]`.

Streams `--tokens` new tokens for 1 and for 8 concurrent requests through EngineClient and
prints tokens/s (completion tokens over wall time, prefill included). Not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time
from pathlib import Path

from app.engine.client import EngineClient, GenerateRequest, TextDelta, WorkerSpec

REPO = Path(__file__).resolve().parents[2]


async def _one(client: EngineClient, rid: str, tokens: int, temperature: float) -> int:
    req = GenerateRequest(
        rid,
        messages=[{"role": "user", "content": f"Write a long story about the number {rid}."}],
        max_tokens=tokens,
        temperature=temperature,
        ignore_eos=True,
    )
    n = 0
    async for event in client.generate(req):
        if isinstance(event, TextDelta):
            n += event.n_tokens
    return n


async def _bench(args: argparse.Namespace) -> None:
    env = dict(kv.split("=", 1) for kv in args.env)
    spec = WorkerSpec(
        "bench", Path(args.model), n_ctx=args.n_ctx, parallel=max(args.streams), env=env
    )
    client = await EngineClient.start(spec)
    try:
        await _one(client, "warm", 8, args.temperature)
        for streams in args.streams:
            for rep in range(args.repeat):
                t0 = time.perf_counter()
                cpu0 = resource.getrusage(resource.RUSAGE_SELF)
                counts = await asyncio.gather(
                    *(
                        _one(client, f"{streams}-{rep}-{i}", args.tokens, args.temperature)
                        for i in range(streams)
                    )
                )
                dt = time.perf_counter() - t0
                cpu1 = resource.getrusage(resource.RUSAGE_SELF)
                front_cpu = cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime
                sys.stdout.write(
                    f"streams={streams} tokens={sum(counts)} wall={dt:.2f}s "
                    f"-> {sum(counts) / dt:.1f} tok/s aggregate, "
                    f"{sum(counts) / dt / streams:.1f} tok/s per stream, "
                    f"front CPU {front_cpu / sum(counts) * 1e6:.0f} us/token\n"
                )
    finally:
        await client.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument(
        "model", nargs="?", default=str(REPO / "models/SmolLM2-135M-Instruct.Q4_1.gguf")
    )
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--n-ctx", type=int, default=2048)
    parser.add_argument("--temperature", type=float, default=0.0)
    parser.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for the worker")
    asyncio.run(_bench(parser.parse_args()))


if __name__ == "__main__":
    main()

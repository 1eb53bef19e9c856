"""Cluster benchmark (issue 15): the cost of llama.cpp's RPC hop on the test model.

Two `halo node` processes on loopback (CPU devices), and the same model loaded by a worker
(EngineClient, as halo serve does) three ways: local only, split this box + one node, split
this box + two nodes (equal thirds). For each: prompt tokens/s and decode tokens/s of one
stream (temperature 0, EOS ignored) and whether its text equals the local one.

    python -m bench.cluster [--tokens 128] [--runs 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil

from app.catalog.shards import read_model
from app.engine.client import EngineClient, Finished, GenerateRequest, TextDelta, WorkerSpec
from app.hardware.nodes import query_node
from app.scheduler.split import plan
from bench.servers import free_port

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPT = ("Write a long story about a lighthouse keeper who finds a message in a bottle. "
          "Describe the sea, the weather and the keeper's thoughts in detail.")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of these processes so far."""
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


@contextmanager
def node(threads: int, cpu_variant: str | None) -> Iterator[tuple[str, int]]:
    port = free_port()
    cmd = [sys.executable, "-m", "app", "node", "--host", "127.0.0.1", "--port", str(port),
           "--backend", "cpu", "--threads", str(threads)]
    if cpu_variant:
        cmd += ["--cpu-variant", cpu_variant]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        for _ in range(300):
            if asyncio.run(query_node(address, timeout=1)).ok:
                break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"node {address} did not start")
        yield address, proc.pid
    finally:
        proc.terminate()
        proc.wait(30)


def spec_for(nodes: list[str], threads: int, cpu_variant: str | None) -> WorkerSpec:
    base = WorkerSpec("bench", MODEL, n_ctx=1024, parallel=1, n_threads=threads,
                      cpu_variant=cpu_variant)
    if not nodes:
        return base
    n_layer = read_model(MODEL).info.block_count or 0
    split = plan(n_layer, nodes, [1.0] * (len(nodes) + 1), local_offload=False)
    return dataclasses.replace(base, n_gpu_layers=split.n_gpu_layers, rpc_nodes=split.nodes,
                               tensor_split=split.tensor_split)


async def run(spec: WorkerSpec, tokens: int, runs: int, node_pids: list[int]) -> dict[str, Any]:
    engine = await EngineClient.start(spec)
    try:
        pp, tg, texts = [], [], []
        pids = [engine.pid, *node_pids]
        cpu = 0.0
        generated = 0
        for i in range(runs + 1):  # the first run warms up
            if i == 1:
                cpu = cpu_seconds(pids)
            req = GenerateRequest(f"r{i}", messages=[{"role": "user", "content": PROMPT}],
                                  max_tokens=tokens, temperature=0, ignore_eos=True)
            text = ""
            async for event in engine.generate(req):
                if isinstance(event, TextDelta):
                    text += event.text
                elif isinstance(event, Finished) and i:
                    pp.append(event.prompt_tokens / (event.prompt_ms / 1000))
                    tg.append((event.completion_tokens - 1) / (event.decode_ms / 1000))
                    generated += event.completion_tokens
            texts.append(text)
        cpu = cpu_seconds(pids) - cpu
        return {"cpu_ms_per_token": round(1000 * cpu / max(generated, 1), 2),
                "prompt_tps": round(statistics.median(pp), 1),
                "decode_tps": round(statistics.median(tg), 1),
                "decode_tps_best": round(max(tg), 1), "text": texts[-1]}
    finally:
        await engine.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cpu-variant", default=None, help="force a CPU backend variant")
    args = parser.parse_args()
    rows = []
    load_before = os.getloadavg()[0]
    with ExitStack() as stack:
        started = [stack.enter_context(node(args.threads, args.cpu_variant)) for _ in range(2)]
        nodes = [address for address, _ in started]
        pids = dict(started)
        local = None
        for label, used in (("local", []), ("local + 1 node", nodes[:1]),
                            ("local + 2 nodes", nodes)):
            spec = spec_for(used, args.threads, args.cpu_variant)
            result = asyncio.run(run(spec, args.tokens, args.runs, [pids[a] for a in used]))
            local = local or result["text"]
            rows.append({"setup": label, "prompt_tps": result["prompt_tps"],
                         "decode_tps": result["decode_tps"],
                         "decode_tps_best": result["decode_tps_best"],
                         "cpu_ms_per_token": result["cpu_ms_per_token"],
                         "same_text_as_local": result["text"] == local})
    print(json.dumps({"model": MODEL.name, "tokens": args.tokens, "runs": args.runs,
                      "threads_per_process": args.threads,
                      "loadavg_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
                      "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

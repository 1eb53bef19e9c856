"""Scheduler benchmark (issue 4): what halo's admission adds to a cold start, and swaps.

1. Cold time to first token through halo (model unloaded, streaming request) against the bare
   cost of the same work without halo: start a worker process, load the model with llama.cpp
   (EngineClient.start) and generate the first token of the same prompt.
2. A mixed two-model workload under a budget that holds one model: requests for both models
   from several clients at once; swaps (loads) counted from /metrics.

    python -m bench.scheduler [--runs 3] [--requests 24] [--clients 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from app.catalog.catalog import Defaults, scan
from app.engine.client import EngineClient, GenerateRequest, TextDelta, WorkerSpec
from app.scheduler.estimate import estimate
from bench.servers import free_port

REPO = Path(__file__).resolve().parent.parent
MODELS = {"smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf", "gemma3": "gemma-3-270m-q4_k_m.gguf"}
PROMPT = "Say hello."
TEMPLATE = ("{% for m in messages %}<start_of_turn>user\n{{ m['content'] }}<end_of_turn>\n"
            "{% endfor %}<start_of_turn>model\n")


def models_dir(root: Path) -> Path:
    for name in MODELS.values():
        (root / name).symlink_to(REPO / "models" / name)
    (root / "models.toml").write_text(
        f'[models.smollm2]\npath = "{MODELS["smollm2"]}"\nn_ctx = 1024\nparallel = 2\n'
        f'[models.gemma3]\npath = "{MODELS["gemma3"]}"\nn_ctx = 1024\nparallel = 2\n'
        f"chat_template = '''{TEMPLATE}'''\n")
    return root


@contextmanager
def halo(root: Path, *args: str) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, "-m", "app", "serve", "--port", str(port), "--models-dir", str(root),
           "--n-threads", "2", "--log-level", "warning", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def halo_cold_ttft(url: str, model: str) -> float:
    httpx.post(url + "/models/unload", json={"model": model}, timeout=60)
    body = {"model": model, "stream": True, "max_tokens": 1, "temperature": 0,
            "messages": [{"role": "user", "content": PROMPT}]}
    started = time.perf_counter()
    with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=120) as resp:
        for line in resp.iter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                return time.perf_counter() - started
    raise RuntimeError("no token")


async def bare_ttft(root: Path, model: str) -> float:
    entry = scan(root, root / "models.toml", Defaults(1024, 2, 300)).entries[model]
    spec = WorkerSpec(model, entry.path, entry.n_ctx, entry.parallel, n_threads=2,
                      chat_template=entry.chat_template)
    started = time.perf_counter()
    engine = await EngineClient.start(spec)
    try:
        request = GenerateRequest("bench", messages=[{"role": "user", "content": PROMPT}],
                                  max_tokens=1, temperature=0)
        async for event in engine.generate(request):
            if isinstance(event, TextDelta) and event.text:
                return time.perf_counter() - started
        raise RuntimeError("no token")
    finally:
        await engine.stop()


def loads(url: str) -> int:
    total = 0.0
    for line in httpx.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("halo_model_loads_total{") and 'result="ok"' in line:
            total += float(line.split()[-1])
    return int(total)


async def mixed(url: str, requests: int, clients: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    plan = [rng.choice(list(MODELS)) for _ in range(requests)]
    queue: asyncio.Queue[str] = asyncio.Queue()
    for model in plan:
        queue.put_nowait(model)
    latencies: list[float] = []
    statuses: list[int] = []

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            model = queue.get_nowait()
            started = time.perf_counter()
            resp = await http.post(url + "/v1/chat/completions", json={
                "model": model, "max_tokens": 16, "temperature": 0,
                "messages": [{"role": "user", "content": PROMPT}]})
            statuses.append(resp.status_code)
            latencies.append(time.perf_counter() - started)

    before = loads(url)
    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=300) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    wall = time.perf_counter() - started
    return {"requests": requests, "clients": clients, "wall_s": round(wall, 2),
            "loads": loads(url) - before,
            "model_changes_in_plan": sum(a != b for a, b in zip(plan, plan[1:], strict=False)),
            "ok": statuses.count(200), "p50_s": round(statistics.median(latencies), 3),
            "max_s": round(max(latencies), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    results: dict[str, Any] = {"cold": {}, "mixed": {}}
    with tempfile.TemporaryDirectory(prefix="halo-sched-bench-") as tmp:
        root = models_dir(Path(tmp))
        with halo(root) as url:
            for model in MODELS:
                bare = [asyncio.run(bare_ttft(root, model)) for _ in range(args.runs)]
                served = [halo_cold_ttft(url, model) for _ in range(args.runs)]
                b, s = statistics.median(bare), statistics.median(served)
                results["cold"][model] = {"bare_s": round(b, 3), "halo_s": round(s, 3),
                                          "overhead": round(s / b - 1, 3)}
                print(f"cold TTFT {model}: bare load+first token {b:.3f}s, through halo "
                      f"{s:.3f}s, scheduler adds {100 * (s / b - 1):+.1f}%", flush=True)
        catalog = scan(root, root / "models.toml", Defaults(1024, 2, 300))
        needs = [estimate(e.file, n_ctx=e.n_ctx, parallel=e.parallel).total for e in catalog]
        one = max(needs) + (32 << 20)
        with halo(root, "--memory-budget", str(one)) as url:
            mix = asyncio.run(mixed(url, args.requests, args.clients, seed=1))
        results["mixed"] = {"budget_bytes": one, **mix}
        print(f"mixed workload under a one-model budget: {mix['requests']} requests from "
              f"{mix['clients']} clients, {mix['model_changes_in_plan']} model changes in the "
              f"request order, {mix['loads']} loads, {mix['ok']} ok, wall {mix['wall_s']}s, "
              f"latency p50 {mix['p50_s']}s max {mix['max_s']}s", flush=True)
    out = REPO / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"scheduler-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results: {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HALO_LOG_LEVEL", "warning")
    raise SystemExit(main())

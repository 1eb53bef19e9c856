"""Embedding throughput: halo's /v1/embeddings vs llama-server's, same model, same inputs.

Each server embeds the same batch workload: `--requests` requests of `--batch` inputs each
(short sentences of varied length), sent by `--clients` concurrent clients. Reported:
inputs/s and requests/s over the whole run (after one warm-up request), and the ratio.

    python -m bench.embeddings [--batch 32] [--requests 24] [--clients 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from bench import build_llama_server, servers

MODEL_FILE = "all-MiniLM-L6-v2-f16.gguf"
MODEL_ID = "minilm"
N_CTX = 512
PARALLEL = 32  # sequences in one decode (halo) / -np (llama-server)
WORDS = ["local", "model", "server", "memory", "budget", "cache", "token", "batch", "vector",
         "query", "document", "answer", "kernel", "device", "vulkan", "rocm", "unified",
         "context", "prompt", "stream", "latency", "throughput"]


def sentence(i: int) -> str:
    n = 6 + (i * 7) % 40  # 6..45 words
    return " ".join(WORDS[(i * 3 + k * 5) % len(WORDS)] for k in range(n)) + f" #{i}"


def _prepare_halo(model: Path, port: int, threads: int) -> servers.Launch:
    python = servers.REPO_ROOT / ".venv" / "bin" / "python"
    if not python.is_file():
        raise servers.ServerUnavailable(f"{python} is missing (run `make test` first)")
    models_dir = Path(tempfile.mkdtemp(prefix="halo-bench-emb-"))
    (models_dir / MODEL_FILE).symlink_to(model.resolve())
    (models_dir / "models.toml").write_text(
        f'[models.{MODEL_ID}]\npath = "{MODEL_FILE}"\nn_ctx = {N_CTX}\nparallel = {PARALLEL}\n'
        f"n_batch = {N_CTX * 4}\n", encoding="utf-8")
    argv = [str(python), "-m", "app", "serve", "--host", "127.0.0.1", "--port", str(port),
            "--models-dir", str(models_dir), "--n-threads", str(threads),
            "--preload", MODEL_ID]
    return servers.Launch(argv, servers.REPO_ROOT,
                          lambda: shutil.rmtree(models_dir, ignore_errors=True))


def _prepare_llama_server(model: Path, port: int, threads: int) -> servers.Launch:
    if not build_llama_server.is_built():
        build_llama_server.build()
    argv = [str(build_llama_server.binary_path()), "-m", str(model), "--embeddings",
            "--pooling", "mean", "-np", str(PARALLEL), "-c", str(N_CTX * PARALLEL),
            "-b", str(N_CTX * 4), "-ub", str(N_CTX * 4), "-t", str(threads),
            "--host", "127.0.0.1", "--port", str(port), "--alias", MODEL_ID]
    return servers.Launch(argv, servers.REPO_ROOT)


SPECS = {
    "halo": servers.ServerSpec("halo", f"halo embedding worker, {PARALLEL} sequences/decode",
                               "/health", lambda _: {}, _prepare_halo),
    "llama-server": servers.ServerSpec(
        "llama-server", f"llama-server --embeddings --pooling mean -np {PARALLEL}", "/health",
        lambda _: {}, _prepare_llama_server),
}


async def _run(url: str, batch: int, requests: int, clients: int) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=url, timeout=600, trust_env=False) as client:
        async def one(r: int) -> int:
            inputs = [sentence(r * batch + k) for k in range(batch)]
            resp = await client.post("/v1/embeddings", json={"model": MODEL_ID,
                                                             "input": inputs})
            resp.raise_for_status()
            data = resp.json()["data"]
            assert len(data) == batch
            return batch

        await one(10_000)  # warm-up
        queue = list(range(requests))
        started = time.perf_counter()

        async def worker() -> int:
            done = 0
            while queue:
                done += await one(queue.pop())
            return done

        counts = await asyncio.gather(*(worker() for _ in range(clients)))
        seconds = time.perf_counter() - started
    inputs = sum(counts)
    return {"inputs": inputs, "seconds": round(seconds, 3),
            "inputs_per_s": round(inputs / seconds, 1),
            "requests_per_s": round(requests / seconds, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--requests", type=int, default=24)
    parser.add_argument("--clients", type=int, default=2)
    parser.add_argument("--servers", default="halo,llama-server")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    model = servers.REPO_ROOT / "models" / MODEL_FILE
    if not model.is_file():
        raise SystemExit(f"{model} is missing: run `make models`")
    results: dict[str, Any] = {}
    log_dir = Path(tempfile.mkdtemp(prefix="halo-bench-emb-logs-"))
    for name in args.servers.split(","):
        server = servers.start(SPECS[name], model, log_dir)
        try:
            results[name] = asyncio.run(_run(server.base_url, args.batch, args.requests,
                                             args.clients))
        finally:
            server.stop()
        print(f"{name}: {results[name]}", flush=True)
    if "halo" in results and "llama-server" in results:
        ratio = results["halo"]["inputs_per_s"] / results["llama-server"]["inputs_per_s"]
        results["ratio_halo_to_llama_server"] = round(ratio, 3)
        print(f"halo / llama-server: {ratio:.2f}x", flush=True)
    results["workload"] = {"batch": args.batch, "requests": args.requests,
                           "clients": args.clients, "model": MODEL_FILE,
                           "threads": servers.THREADS}
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

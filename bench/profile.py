"""Where the time goes at 8 streams: py-spy on halo's front process and its worker.

    python -m bench.profile [--streams 8] [--rounds 2] [--max-tokens 128] [--py-spy PATH]

Starts halo as `make bench` does, runs the plain streaming workload while `py-spy record`
samples both processes (Python frames, active threads only), and prints per process the
share of samples by leaf function and by area (decode, sampling, IPC, SSE, ...). The raw
collapsed stacks stay in bench/results/profile-<timestamp>/ for a flame graph.
py-spy is not a dependency of halo: `pip install py-spy` (it must be allowed to ptrace).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from bench import servers
from bench.workload import Workload

RESULTS = Path(__file__).resolve().parent / "results"

# area -> substrings of a frame ("function (file)"); the first area found in a stack wins,
# searching from the leaf towards the root
AREAS: list[tuple[str, tuple[str, ...]]] = [
    ("llama_decode (native)", ("decode (app/engine/batch.py", "decode (app/engine/draft.py")),
    ("sampling (native chain)", ("sample (app/engine/sampling.py",)),
    ("logprobs", ("token_logprob",)),
    ("draft model", ("app/engine/draft.py",)),
    ("speculation (proposals, verify)", ("app/engine/speculative.py", "_add_drafts", "_verify")),
    ("detokenize + stop strings", ("app/engine/detok.py", "piece (app/engine/model.py")),
    ("IPC encode/send", ("app/engine/ipc.py", "events (app/engine/worker.py",
                         "send (app/engine/worker.py")),
    ("IPC receive (reader thread)", ("_reader (app/engine/worker.py",)),
    ("loop bookkeeping", ("app/engine/loop.py", "app/engine/slots.py")),
    ("engine client (dispatch)", ("app/engine/client.py",)),
    ("metrics", ("app/metrics.py", "prometheus_client")),
    ("OpenAI chunk building", ("app/services/openai_format.py", "app/services/reasoning.py",
                               "app/services/logprob_format.py")),
    ("JSON encoding", ("json/encoder.py", "json/__init__.py", "_data (app/api/sse.py")),
    ("SSE writer", ("sse_starlette", "app/api/sse.py")),
    ("generation service", ("app/services/generation.py",)),
    ("HTTP (uvicorn, h11, starlette)", ("uvicorn", "h11", "starlette", "httptools")),
    ("request parsing (pydantic, fastapi)", ("pydantic", "fastapi", "app/services/prepare.py")),
    ("asyncio event loop", ("asyncio", "uvloop")),
]


def area_of(stack: list[str]) -> str:
    for frame in reversed(stack):
        for area, needles in AREAS:
            if any(n in frame for n in needles):
                return area
    return "other"


def summarize(raw: Path, top: int = 12) -> str:
    """Markdown summary of one py-spy raw (collapsed stacks) file."""
    leaves: Counter[str] = Counter()
    areas: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(encoding="utf-8", errors="replace").splitlines():
        stack_text, _, count_text = line.rpartition(" ")
        if not stack_text or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [f for f in stack_text.split(";") if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        leaves[_short(frames[-1])] += count
        areas[area_of(frames)] += count
    if not total:
        return f"{raw.name}: no samples\n"
    out = [f"**{raw.stem}**: {total} samples of active threads", "",
           "| area | share |", "| --- | ---: |"]
    out += [f"| {name} | {n / total:.1%} |" for name, n in areas.most_common()]
    out += ["", "| leaf function | share |", "| --- | ---: |"]
    out += [f"| `{name}` | {n / total:.1%} |" for name, n in leaves.most_common(top)]
    return "\n".join(out) + "\n"


def _short(frame: str) -> str:
    """'name (path/to/file.py:12)' -> 'name (file.py)'."""
    name, _, where = frame.partition(" (")
    file = where.rstrip(")").rsplit(":", 1)[0]
    return f"{name} ({'/'.join(file.split('/')[-2:])})" if file else name


def _record(py_spy: str, pid: int, out: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [py_spy, "record", "--pid", str(pid), "--format", "raw", "--rate", "250",
         "--nonblocking", "--output", str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--streams", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    parser.add_argument("--model", type=Path,
                        default=servers.REPO_ROOT / "models" / servers.MODEL_FILE)
    args = parser.parse_args(argv)
    out_dir = RESULTS / f"profile-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    out_dir.mkdir(parents=True)
    spec = servers.SERVERS["halo"]
    server = servers.start(spec, args.model, out_dir)
    try:
        workload = Workload(server.base_url, servers.MODEL_ID, args.max_tokens,
                            spec.extra_body(args.max_tokens))
        asyncio.run(workload.warm_up())
        server.remember_descendants()
        pids = {"front": server.process.pid}
        pids.update({f"worker-{i}": pid for i, pid in enumerate(sorted(server.descendants))})
        recorders = {name: _record(args.py_spy, pid, out_dir / f"{name}.txt")
                     for name, pid in pids.items()}
        time.sleep(1.0)
        started = time.perf_counter()
        level = asyncio.run(workload.run_level(args.streams, args.rounds))
        wall = time.perf_counter() - started
        for proc in recorders.values():
            os.killpg(proc.pid, signal.SIGINT)
        for proc in recorders.values():
            proc.wait(30)
    finally:
        server.stop()
    summary = level.summary()
    print(f"{args.streams} streams x {args.rounds} rounds: {summary['tokens_total']} tokens in "
          f"{wall:.1f}s, {summary['aggregate_tokens_per_second']:.1f} tok/s aggregate "
          "(under py-spy)\n")
    text = "\n".join(summarize(out_dir / f"{name}.txt") for name in pids
                     if (out_dir / f"{name}.txt").is_file())
    print(text)
    (out_dir / "summary.md").write_text(text)
    print(f"raw stacks and summary: {out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

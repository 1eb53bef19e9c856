"""`make bench`: the same streaming workload against each server in turn, then one table.

    python -m bench.run [--servers halo,llama-server,llama-cpp-python] [--levels 1,4,8]
                        [--rounds N] [--max-tokens N] [--workloads plain,edit]
                        [--edit-servers ...] [--edit-runs N]

Two workloads: `plain` (concurrent story streams, see workload.py) and `edit` (one stream
rewriting a 60-line function, where speculative decoding pays; see edit.py).

Servers run one at a time (the numbers are only comparable when nothing else competes for the
cores). A server that cannot be built, started or streamed from is reported as failed and the
others still run. Raw results go to bench/results/<timestamp>.json (plus a Markdown copy of the
table and each server's log under bench/results/<timestamp>/).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar

from bench import edit, servers
from bench.workload import Workload

T = TypeVar("T")
RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_SERVERS = "halo,llama-server,llama-cpp-python"
DEFAULT_EDIT_SERVERS = "halo,llama-server,llama-server-ngram-mod,llama-server-ngram-simple"
REFERENCE = "llama-server"
FOREIGN_CPU_WARN = 0.10
LEGEND = ("lcpp = python -m llama_cpp.server (lcpp-noint: --interrupt_requests False); "
          "x/ls = x / llama-server (tok/s: higher is better; TTFT: lower is better). "
          "* = the server sent no usage: max_tokens when finish_reason is \"length\", "
          "else the count of content deltas (a lower bound).")


def machine_info() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "Model name":
                model = value.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {"cpu": model, "cores": os.cpu_count(), "ram_gib": mem_gib,
            "kernel": platform.release(), "python": platform.python_version()}


def _cpu_times() -> tuple[int, int] | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values), idle


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Fraction of all cores busy over `seconds` (other processes, before a server starts)."""
    first = _cpu_times()
    time.sleep(seconds)
    second = _cpu_times()
    if first is None or second is None or second[0] == first[0]:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return round(1 - idle / total, 3)


def _own_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


Snapshot = tuple[tuple[int, int] | None, float, float]


def foreign_cpu_share(before: Snapshot, after: Snapshot) -> float | None:
    """Share of all CPU time during a level used by neither the server nor this harness."""
    if before[0] is None or after[0] is None:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    total = (after[0][0] - before[0][0]) / ticks
    busy = total - (after[0][1] - before[0][1]) / ticks
    ours = (after[1] - before[1]) + (after[2] - before[2])
    if total <= 0:
        return None
    return round(max(0.0, busy - ours) / total, 3)


def wait_for_idle(max_wait: float, threshold: float = 0.15) -> float | None:
    """Wait (up to max_wait seconds) until other processes leave the CPUs mostly idle (between
    levels the server under test has no requests, so its share is ~0 too)."""
    deadline = time.monotonic() + max_wait
    busy = cpu_busy()
    announced = False
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        if not announced:
            print(f"    CPUs {busy:.0%} busy; waiting up to {max_wait:.0f}s for them to idle",
                  flush=True)
            announced = True
        busy = cpu_busy(2.0)
    return busy


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=servers.REPO_ROOT,
                             capture_output=True, text=True, check=False).stdout.strip()
        # Untracked files under app/ count: halo runs whatever is in the work tree.
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "app", "bench"],
                               cwd=servers.REPO_ROOT, capture_output=True, text=True,
                               check=False).stdout.strip()
    except OSError:
        return "uncommitted"
    if not out:
        return "uncommitted"
    return out + ("-dirty" if dirty else "")


def bench_server(spec: servers.ServerSpec, model: Path, levels: list[int], rounds: int,
                 max_tokens: int, log_dir: Path, records: list[dict[str, Any]],
                 wait_idle: float = 0.0) -> None:
    """Start one server, run every level against it, stop it; append its record to `records`
    first, so that an interrupted run keeps the levels it finished. A failure of the server is
    recorded, not raised."""
    record: dict[str, Any] = {"name": spec.name, "description": spec.description,
                              "status": "interrupted", "error": None, "levels": {}}
    records.append(record)
    print(f"\n=== {spec.name}: {spec.description}", flush=True)
    busy = wait_for_idle(wait_idle)
    record["cpu_busy_before"] = busy
    if busy is not None and busy > 0.15:
        print(f"    warning: the CPUs are {busy:.0%} busy before the start; other processes "
              "compete for the cores and the numbers will be low", flush=True)
    try:
        server = servers.start(spec, model, log_dir)
    except Exception as exc:  # ServerUnavailable, or anything else: the others still run
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        print(f"!!! {spec.name} FAILED to start: {exc}", flush=True)
        return
    record.update(argv=server.launch.argv, port=server.port,
                  startup_seconds=round(server.startup_seconds, 2), log=str(server.log_path))
    print(f"    healthy on port {server.port} after {server.startup_seconds:.1f}s", flush=True)
    try:
        workload = Workload(server.base_url, servers.MODEL_ID, max_tokens,
                            spec.extra_body(max_tokens))
        warm = run_async(workload.warm_up())
        record["warm_up"] = warm.to_json()
        if warm.error is not None or warm.tokens == 0:
            reason = warm.error or "no tokens streamed"
            record.update(status="failed", error=f"warm-up request failed: {reason}")
            print(f"!!! {spec.name} FAILED warm-up: {reason}\n{server.log_tail(15)}", flush=True)
            return
        print(f"    warm-up: {warm.tokens} tokens, finish_reason={warm.finish_reason}", flush=True)
        for level in levels:
            if wait_idle > 0:
                wait_for_idle(wait_idle)
            before = (_cpu_times(), server.cpu_seconds(), _own_cpu_seconds())
            result = run_async(workload.run_level(level, rounds))
            after = (_cpu_times(), server.cpu_seconds(), _own_cpu_seconds())
            summary = result.summary()
            summary["server_cpu_seconds"] = round(after[1] - before[1], 2)
            summary["foreign_cpu"] = foreign_cpu_share(before, after)
            record["levels"][str(level)] = {
                "summary": summary, "requests": [r.to_json() for r in result.requests]}
            agg = fmt(summary["aggregate_tokens_per_second"])
            print(f"    c={level}: {summary['tokens_total']} tokens in "
                  f"{summary['wall_seconds']:.1f}s, agg {agg} tok/s, "
                  f"stream {fmt(summary['stream_tokens_per_second_mean'])} tok/s, "
                  f"TTFT p50 {fmt_ms(summary['ttft_p50'])} ms, errors {summary['errors']}, "
                  f"no finish_reason {summary['no_finish_reason']}", flush=True)
            foreign = summary["foreign_cpu"]
            if foreign is not None and foreign > FOREIGN_CPU_WARN:
                print(f"    warning: other processes used {foreign:.0%} of the CPUs during "
                      f"c={level}; these numbers are not clean", flush=True)
            if process_died(server):
                record.update(status="failed",
                              error=f"server exited during c={level}: {server.log_tail(15)}")
                print(f"!!! {spec.name} died during c={level}", flush=True)
                return
        record["status"] = "ok"
    except Exception as exc:  # a harness or protocol surprise fails this server only
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        print(f"!!! {spec.name} FAILED: {type(exc).__name__}: {exc}\n{server.log_tail(15)}",
              flush=True)
    finally:
        server.stop()
        print(f"    stopped {spec.name}", flush=True)


class Terminated(Exception):
    """SIGTERM arrived while an asyncio level was running."""


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """asyncio.run, but SIGTERM cancels the run cleanly and surfaces as KeyboardInterrupt.

    (SIGINT is already handled that way by asyncio.run; a plain Python SIGTERM handler that
    raises inside the event loop can leave it stuck.)"""

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        terminated = False

        def on_term() -> None:
            nonlocal terminated
            terminated = True
            if task is not None:
                task.cancel()

        loop.add_signal_handler(signal.SIGTERM, on_term)
        try:
            return await coro
        except asyncio.CancelledError:
            if terminated:
                raise Terminated from None
            raise
        finally:
            loop.remove_signal_handler(signal.SIGTERM)

    try:
        return asyncio.run(main())
    except Terminated:
        raise KeyboardInterrupt from None


def process_died(server: servers.RunningServer) -> bool:
    return server.process.poll() is not None


def fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def fmt_ms(value: float | None) -> str:
    return "-" if value is None else f"{value * 1000:.0f}"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "-"
    return f"{a / b:.2f}"


Metric = tuple[str, str, Callable[[float | None], str]]
METRICS: list[Metric] = [
    ("per-stream tok/s (mean)", "stream_tokens_per_second_mean", fmt),
    ("aggregate tok/s", "aggregate_tokens_per_second", fmt),
    ("TTFT p50 (ms)", "ttft_p50", fmt_ms),
    ("TTFT p95 (ms)", "ttft_p95", fmt_ms),
]


def table_rows(records: list[dict[str, Any]], levels: list[int]) -> tuple[list[str],
                                                                          list[list[str]]]:
    names = [r["name"] for r in records]
    others = [n for n in names if n != REFERENCE] if REFERENCE in names else []
    titles = {n: servers.SERVERS[n].label or n for n in names}
    header = ["c", "metric", *[titles[n] for n in names],
              *[f"{titles[n]}/ls" for n in others]]
    by_name = {r["name"]: r for r in records}
    rows: list[list[str]] = []

    def missing(name: str) -> str:
        status: str = by_name[name]["status"]
        return "FAILED" if status == "failed" else "n/a" if status == "ok" else status.upper()

    def summary(name: str, level: int) -> dict[str, Any] | None:
        level_record = by_name[name]["levels"].get(str(level))
        return None if level_record is None else level_record["summary"]

    for level in levels:
        for label, key, render in METRICS:
            cells = []
            for name in names:
                s = summary(name, level)
                cells.append(missing(name) if s is None else render(s[key]))
            ref = summary(REFERENCE, level) if REFERENCE in by_name else None
            ratios = []
            for name in others:
                s = summary(name, level)
                ratios.append("-" if s is None or ref is None else ratio(s[key], ref[key]))
            rows.append([str(level), label, *cells, *ratios])
        cells = []
        for name in names:
            s = summary(name, level)
            if s is None:
                cells.append(missing(name))
                continue
            bad = s["no_finish_reason"]
            errors = f" ({s['errors']} err)" if s["errors"] else ""
            cells.append(f"{bad}/{s['requests']}{errors}")
        rows.append([str(level), "no finish_reason", *cells, *["" for _ in others]])
        cells = []
        for name in names:
            s = summary(name, level)
            if s is None or s["tokens_per_request_min"] is None:
                cells.append("-")
                continue
            lo, hi = s["tokens_per_request_min"], s["tokens_per_request_max"]
            src = "" if s["token_count_source"] == ["usage"] else "*"
            cells.append((f"{lo}" if lo == hi else f"{lo}-{hi}") + src)
        rows.append([str(level), "tokens/request", *cells, *["" for _ in others]])
        cells = []
        for name in names:
            s = summary(name, level)
            foreign = None if s is None else s.get("foreign_cpu")
            cells.append("-" if foreign is None else f"{foreign:.0%}")
        rows.append([str(level), "other processes' CPU", *cells, *["" for _ in others]])
    return header, rows


def render_text(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    lines = ["  ".join(h.ljust(widths[i]) if i < 2 else h.rjust(widths[i])
                       for i, h in enumerate(header))]
    lines.append("  ".join("-" * w for w in widths))
    prev = None
    for row in rows:
        if prev is not None and row[0] != prev:
            lines.append("")
        prev = row[0]
        lines.append("  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i])
                               for i, c in enumerate(row)))
    return "\n".join(lines)


def render_markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join(["---", "---"] + ["---:"] * (len(header) - 2)) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def parse_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Streaming benchmark: halo vs llama.cpp servers")
    parser.add_argument("--servers", default=DEFAULT_SERVERS,
                        help=f"comma list from {','.join(servers.SERVERS)} "
                        f"(default {DEFAULT_SERVERS})")
    parser.add_argument("--levels", default="1,4,8", help="concurrency levels (default 1,4,8)")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds per level; each round starts C streams together (default 2)")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--wait-idle", type=float, default=120.0, metavar="SECONDS",
                        help="before each server, wait up to this long for other processes to "
                        "leave the CPUs idle (default 120; 0: only warn)")
    parser.add_argument("--workloads", default="plain,edit",
                        help="plain (concurrent streams) and/or edit (speculative editing)")
    parser.add_argument("--edit-servers", default=DEFAULT_EDIT_SERVERS,
                        help=f"servers of the edit workload (default {DEFAULT_EDIT_SERVERS})")
    parser.add_argument("--edit-runs", type=int, default=3,
                        help="requests per configuration of the edit workload (default 3)")
    parser.add_argument("--model", type=Path,
                        default=servers.REPO_ROOT / "models" / servers.MODEL_FILE)
    args = parser.parse_args(argv)

    workloads = parse_list(args.workloads)
    if not workloads or set(workloads) - {"plain", "edit"}:
        parser.error("--workloads is a comma list of plain and edit")
    names = parse_list(args.servers) if "plain" in workloads else []
    edit_names = parse_list(args.edit_servers) if "edit" in workloads else []
    unknown = [n for n in names + edit_names if n not in servers.SERVERS]
    if unknown:
        parser.error(f"unknown server(s) {unknown}; choose from {list(servers.SERVERS)}")
    levels = [int(x) for x in parse_list(args.levels)]
    if not levels or min(levels) < 1 or args.rounds < 1:
        parser.error("levels and rounds must be positive")
    model: Path = args.model
    if not model.is_file():
        parser.error(f"{model} is missing (make models fetches it)")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS_DIR / stamp
    meta = {
        "timestamp": stamp, "git_commit": git_commit(), "machine": machine_info(),
        "model": str(model), "model_id": servers.MODEL_ID, "levels": levels,
        "rounds": args.rounds, "max_tokens": args.max_tokens, "threads": servers.THREADS,
        "llama_cpp_python": servers.LLAMA_CPP_PYTHON_VERSION, "workloads": workloads,
        "edit_runs": args.edit_runs, "edit_max_tokens": edit.MAX_TOKENS,
    }
    print(f"bench {stamp}: servers {names}, levels {levels}, {args.rounds} round(s), "
          f"max_tokens {args.max_tokens}, commit {meta['git_commit']}", flush=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    records: list[dict[str, Any]] = []
    edit_records: list[dict[str, Any]] = []
    started = time.monotonic()
    interrupted = False
    try:
        for name in names:
            bench_server(servers.SERVERS[name], model, levels, args.rounds, args.max_tokens,
                         log_dir, records, args.wait_idle)
        for name in edit_names:
            wait_for_idle(args.wait_idle)
            edit.bench_edit_server(servers.SERVERS[name], model, args.edit_runs, log_dir,
                                   edit_records, run_async)
    except KeyboardInterrupt:
        interrupted = True
        print("\ninterrupted; servers stopped, writing partial results", flush=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    meta["duration_seconds"] = round(time.monotonic() - started, 1)
    meta["interrupted"] = interrupted

    out = RESULTS_DIR / f"{stamp}.json"
    out.write_text(json.dumps({"meta": meta, "servers": records, "edit": edit_records},
                              indent=2) + "\n")
    if not records and not edit_records:
        return 130
    log_dir.mkdir(parents=True, exist_ok=True)
    if edit_records:
        table = edit.edit_table(edit_records)
        print(f"\nedit workload ({edit.MAX_TOKENS} tokens, 1 stream):\n{table}\n")
        (log_dir / "edit.md").write_text(table + "\n")
    if not records:
        return 130 if interrupted else 0
    header, rows = table_rows(records, levels)
    text = render_text(header, rows) + "\n" + LEGEND
    print(f"\n{text}\n")
    for record in records:
        if record["status"] != "ok":
            first = record["error"].splitlines()[0] if record["error"] else ""
            print(f"{record['name']}: {record['status'].upper()} {first}")
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "table.md").write_text(render_markdown(header, rows) + "\n\n" + LEGEND + "\n")
    print(f"raw results: {out}\nmarkdown table: {log_dir / 'table.md'}")
    return 130 if interrupted else 0


if __name__ == "__main__":
    raise SystemExit(main())

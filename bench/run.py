"""`make bench`: the same streaming workload against each server in turn, then one table.

    python -m bench.run [--servers halo,llama-server,llama-cpp-python] [--levels 1,4,8]
                        [--rounds N] [--max-tokens N] [--workloads plain,edit]
                        [--edit-servers ...] [--edit-runs N]

Two workloads: `plain` (concurrent story streams, see workload.py) and `edit` (one stream
rewriting a 60-line function, where speculative decoding pays; see edit.py).

The plain workload's servers are all started first and take turns round by round, on the
same prompts (bench/turns.py): one server after the other would compare two moments of a
drifting machine as much as two servers. The table adds each server's ratio to llama-server
round by round (median and range). The editing workload runs its servers one at a time.
A server that cannot be built, started or streamed from is reported as failed and the
others still run. Raw results go to bench/results/<timestamp>.json (plus a Markdown copy of the
table and each server's log under bench/results/<timestamp>/).
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from bench import edit, servers, turns
from bench.host import machine_info, run_async, wait_for_idle

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_SERVERS = "halo,llama-server,llama-cpp-python"
DEFAULT_EDIT_SERVERS = "halo,llama-server,llama-server-ngram-mod,llama-server-ngram-simple"
REFERENCE = "llama-server"
LEGEND = ("lcpp = python -m llama_cpp.server (lcpp-noint: --interrupt_requests False); "
          "x/ls = x / llama-server (tok/s: higher is better; TTFT: lower is better). "
          "* = the server sent no usage: max_tokens when finish_reason is \"length\", "
          "else the count of content deltas (a lower bound).")


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
            if key == "aggregate_tokens_per_second":
                paired = []
                for name in others:
                    s = summary(name, level)
                    paired.append("-" if s is None or ref is None
                                  else turns.paired_cell(turns.paired_ratios(s, ref)))
                rows.append([str(level), "aggregate, x/ls round by round: median (range)",
                             *["" for _ in names], *paired])
            if key == "ttft_p50":
                paired = []
                for name in others:
                    s = summary(name, level)
                    paired.append("-" if s is None or ref is None else turns.paired_ms_cell(
                        turns.paired_ttft_differences(s, ref)))
                rows.append([str(level), "TTFT p50, x - ls round by round (ms): median (range)",
                             *["" for _ in names], *paired])
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
    parser.add_argument("--threads", type=int, default=servers.THREADS,
                        help=f"CPU threads of every server's compute (default {servers.THREADS}; "
                        "on a 2-core machine 1 leaves a core to the front and the client)")
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
    if not levels or min(levels) < 1 or args.rounds < 1 or args.threads < 1:
        parser.error("levels, rounds and threads must be positive")
    model: Path = args.model
    if not model.is_file():
        parser.error(f"{model} is missing (make models fetches it)")

    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    log_dir = RESULTS_DIR / stamp
    meta = {
        "timestamp": stamp, "git_commit": git_commit(), "machine": machine_info(),
        "model": str(model), "model_id": servers.MODEL_ID, "levels": levels,
        "rounds": args.rounds, "max_tokens": args.max_tokens, "threads": args.threads,
        "llama_cpp_python": servers.LLAMA_CPP_PYTHON_VERSION, "workloads": workloads,
        "edit_runs": args.edit_runs, "edit_max_tokens": edit.MAX_TOKENS,
    }
    print(f"bench {stamp}: servers {names}, levels {levels}, {args.rounds} round(s), "
          f"max_tokens {args.max_tokens}, {args.threads} thread(s), commit {meta['git_commit']}",
          flush=True)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    records: list[dict[str, Any]] = []
    edit_records: list[dict[str, Any]] = []
    started = time.monotonic()
    interrupted = False
    try:
        wait_for_idle(args.wait_idle)
        entrants: list[turns.Entrant] = []
        try:
            for name in names:
                entrant = turns.start(servers.SERVERS[name], model, args.max_tokens, log_dir,
                                      records, args.threads)
                if entrant is not None:
                    entrants.append(entrant)
            if entrants:
                turns.play(entrants, levels, args.rounds, args.wait_idle)
        finally:
            for entrant in entrants:
                entrant.server.stop()
                print(f"    stopped {entrant.spec.name}", flush=True)
        if edit_names:
            wait_for_idle(args.wait_idle)
            edit.bench_edit_servers([servers.SERVERS[n] for n in edit_names], model,
                                    args.edit_runs, log_dir, edit_records, run_async,
                                    args.threads)
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

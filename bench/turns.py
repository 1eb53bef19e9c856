"""The plain workload with the servers taking turns, round by round.

On a shared or virtual machine one server's speed drifts by tens of percent over minutes
(llama-server alone moved from 65 to 94 tok/s between runs of one day), so running one
server after the other compares two moments as much as two servers. Here every server is
started and warmed up first; then round r of level C runs on each server in turn, in an
order rotated every round, each on the same prompts. A server's figures are sums over its
own rounds, as before; the ratio to the reference is also taken round by round (each
pair of rounds minutes apart at most), and its median and range go in the table.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import host, servers
from bench.workload import LevelResult, StreamResult, Workload

FOREIGN_CPU_WARN = 0.10


@dataclass
class Entrant:
    """One started server and what its rounds gave."""

    spec: servers.ServerSpec
    record: dict[str, Any]
    server: servers.RunningServer
    workload: Workload
    rounds: dict[int, list[LevelResult]] = field(default_factory=dict)
    cpu: dict[int, float] = field(default_factory=dict)
    foreign: dict[int, list[float]] = field(default_factory=dict)
    alive: bool = True


def start(spec: servers.ServerSpec, model: Path, max_tokens: int, log_dir: Path,
          records: list[dict[str, Any]], threads: int) -> Entrant | None:
    """Start and warm up one server; its record goes into `records` (failed if it did not)."""
    record: dict[str, Any] = {"name": spec.name, "description": spec.description,
                              "status": "interrupted", "error": None, "levels": {}}
    records.append(record)
    print(f"\n=== {spec.name}: {spec.description}", flush=True)
    try:
        server = servers.start(spec, model, log_dir, threads)
    except Exception as exc:  # ServerUnavailable, or anything else: the others still run
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
        print(f"!!! {spec.name} FAILED to start: {exc}", flush=True)
        return None
    record.update(argv=server.launch.argv, port=server.port,
                  startup_seconds=round(server.startup_seconds, 2), log=str(server.log_path))
    print(f"    healthy on port {server.port} after {server.startup_seconds:.1f}s", flush=True)
    workload = Workload(server.base_url, servers.MODEL_ID, max_tokens,
                        spec.extra_body(max_tokens))
    try:
        warm = host.run_async(workload.warm_up())
    except Exception as exc:  # a harness or protocol surprise fails this server only
        warm = StreamResult(0, -1, 0.0, error=f"{type(exc).__name__}: {exc}")
    record["warm_up"] = warm.to_json()
    if warm.error is not None or warm.tokens == 0:
        reason = warm.error or "no tokens streamed"
        record.update(status="failed", error=f"warm-up request failed: {reason}")
        print(f"!!! {spec.name} FAILED warm-up: {reason}\n{server.log_tail(15)}", flush=True)
        server.stop()
        return None
    print(f"    warm-up: {warm.tokens} tokens, finish_reason={warm.finish_reason}", flush=True)
    return Entrant(spec, record, server, workload)


def play_round(entrant: Entrant, level: int, round_index: int) -> None:
    """One round of `level` on one server, with the CPU the others used meanwhile."""
    before = (host.cpu_times(), entrant.server.cpu_seconds(), host.own_cpu_seconds())
    try:
        result = host.run_async(entrant.workload.run_round(level, round_index))
    except Exception as exc:  # a harness or protocol surprise fails this server only
        fail(entrant, f"{type(exc).__name__}: {exc}")
        return
    after = (host.cpu_times(), entrant.server.cpu_seconds(), host.own_cpu_seconds())
    entrant.rounds.setdefault(level, []).append(result)
    entrant.cpu[level] = entrant.cpu.get(level, 0.0) + after[1] - before[1]
    share = host.foreign_cpu_share(before, after)
    if share is not None:
        entrant.foreign.setdefault(level, []).append(share)
    s = result.summary()
    print(f"    c={level} round {round_index} {entrant.spec.name}: "
          f"{_fmt(s['aggregate_tokens_per_second'])} tok/s, TTFT p50 "
          f"{_fmt(s['ttft_p50'], 1000, 0)} ms, errors {s['errors']}", flush=True)
    if entrant.server.process.poll() is not None:
        fail(entrant, f"server exited during c={level}: {entrant.server.log_tail(15)}")


def fail(entrant: Entrant, error: str) -> None:
    entrant.alive = False
    entrant.record.update(status="failed", error=error)
    print(f"!!! {entrant.spec.name} FAILED: {error.splitlines()[0]}", flush=True)


def play(entrants: list[Entrant], levels: list[int], rounds: int, wait_idle: float) -> None:
    """Every level, round by round, each server in turn (rotated each round)."""
    for level in levels:
        if wait_idle > 0:
            host.wait_for_idle(wait_idle)
        for round_index in range(rounds):
            shift = round_index % len(entrants)
            for entrant in entrants[shift:] + entrants[:shift]:
                if entrant.alive:
                    play_round(entrant, level, round_index)
        for entrant in entrants:
            if entrant.alive and entrant.rounds.get(level):
                entrant.record["levels"][str(level)] = level_record(entrant, level)
    for entrant in entrants:
        if entrant.alive:
            entrant.record["status"] = "ok"


def level_record(entrant: Entrant, level: int) -> dict[str, Any]:
    results = entrant.rounds[level]
    merged = LevelResult(level, len(results), sum(r.wall_seconds for r in results),
                         [req for r in results for req in r.requests])
    summary = merged.summary()
    summary["server_cpu_seconds"] = round(entrant.cpu.get(level, 0.0), 2)
    shares = entrant.foreign.get(level, [])
    summary["foreign_cpu"] = max(shares) if shares else None
    rounds = [r.summary() for r in results]
    summary["round_aggregates"] = [r["aggregate_tokens_per_second"] for r in rounds]
    summary["round_ttft_p50"] = [r["ttft_p50"] for r in rounds]
    foreign = summary["foreign_cpu"]
    if foreign is not None and foreign > FOREIGN_CPU_WARN:
        print(f"    warning: other processes used up to {foreign:.0%} of the CPUs during "
              f"{entrant.spec.name} c={level}; these numbers are not clean", flush=True)
    return {"summary": summary, "requests": [r.to_json() for r in merged.requests]}


def _round_pairs(summary: dict[str, Any], reference: dict[str, Any],
                 key: str) -> list[tuple[Any, Any]]:
    """A per-round figure of a server beside the reference's in the same round: the servers
    take turns round by round, so a pair shares the machine's state of the moment."""
    return list(zip(summary.get(key) or [], reference.get(key) or [], strict=False))


def paired_ratios(summary: dict[str, Any], reference: dict[str, Any]) -> list[float]:
    """Round-by-round aggregate tok/s of a server over the reference's same rounds."""
    return [a / b for a, b in _round_pairs(summary, reference, "round_aggregates") if a and b]


def paired_ttft_differences(summary: dict[str, Any], reference: dict[str, Any]) -> list[float]:
    """Round-by-round TTFT p50 of a server minus the reference's in the same rounds (s)."""
    return [a - b for a, b in _round_pairs(summary, reference, "round_ttft_p50")
            if a is not None and b is not None]


def paired_ms_cell(differences: list[float]) -> str:
    if not differences:
        return "-"
    ms = [d * 1000 for d in differences]
    return (f"{statistics.median(ms):+.0f} ({min(ms):+.0f} to {max(ms):+.0f}, "
            f"{len(ms)} rounds)")


def paired_cell(ratios: list[float]) -> str:
    if not ratios:
        return "-"
    return (f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f}, "
            f"{len(ratios)} rounds)")


def _fmt(value: float | None, scale: float = 1.0, digits: int = 1) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}"

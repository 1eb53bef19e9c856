"""The machine under a benchmark: what it is, how busy other processes keep it, and a
SIGTERM-safe asyncio runner."""

from __future__ import annotations

import asyncio
import os
import platform
import signal
import subprocess
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


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


def cpu_times() -> tuple[int, int] | None:
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except (OSError, IndexError):
        return None
    values = [int(v) for v in fields]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return sum(values), idle


def cpu_busy(seconds: float = 1.0) -> float | None:
    """Fraction of all cores busy over `seconds` (other processes, before a server starts)."""
    first = cpu_times()
    time.sleep(seconds)
    second = cpu_times()
    if first is None or second is None or second[0] == first[0]:
        return None
    total, idle = second[0] - first[0], second[1] - first[1]
    return round(1 - idle / total, 3)


def own_cpu_seconds() -> float:
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



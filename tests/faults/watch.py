"""Watch a running halo server from the outside: its worker processes and its memory ledger."""

from __future__ import annotations

import threading
import time
from types import TracebackType

import httpx
import psutil


def workers(server_pid: int) -> list[psutil.Process]:
    """Live worker processes (`python -m app.engine.worker`) of a server."""
    out = []
    try:
        children = psutil.Process(server_pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    for child in children:
        try:
            if "app.engine.worker" in child.cmdline() and child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
        except psutil.NoSuchProcess:
            continue
    return out


class Watch:
    """Samples, in a thread, the number of live workers and the ledger's reserved bytes."""

    def __init__(self, server_pid: int, url: str, period: float = 0.02) -> None:
        self.server_pid, self.url, self.period = server_pid, url, period
        self.max_workers = 0
        self.max_reserved = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                self.max_workers = max(self.max_workers, len(workers(self.server_pid)))
                reserved = client.get(self.url + "/system").json()["memory"]["reserved_bytes"]
                self.max_reserved = max(self.max_reserved, reserved)
                self.samples += 1
                time.sleep(self.period)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(10)

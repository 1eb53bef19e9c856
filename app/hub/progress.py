"""Pull progress for people and for logs: a bar per file on a TTY, else periodic JSON lines."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TextIO

from app.hub.download import PullEvent

MIB = 1 << 20


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


class ProgressPrinter:
    """Call with each PullEvent. `tty`: redraw one bar line per file with bytes, speed and ETA;
    otherwise one JSON line per file at most every `every` seconds (and at every file's end)."""

    def __init__(self, out: TextIO, *, tty: bool, every: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out, self.tty, self.every, self.clock = out, tty, every, clock
        self._file: str | None = None
        self._started: dict[str, tuple[float, int]] = {}  # status:file -> first (time, bytes)
        self._last: dict[str, float] = {}

    def __call__(self, event: PullEvent) -> None:
        if event.file is None:
            self.finish_line()
            if self.tty:
                self._write_status(event)
            else:
                self._json(event.to_dict())
            return
        now = self.clock()
        t0, b0 = self._started.setdefault(f"{event.status}:{event.file}", (now, event.completed))
        elapsed = now - t0
        speed = (event.completed - b0) / elapsed if elapsed > 0 else 0.0
        left = event.total - event.completed
        eta = left / speed if speed > 0 else None
        done = event.completed >= event.total
        if self.tty:
            self._bar(event, speed, eta)
            return
        if done or now - self._last.get(f"{event.status}:{event.file}", -1e9) >= self.every:
            self._last[f"{event.status}:{event.file}"] = now
            self._json({**event.to_dict(), "bytes_per_second": round(speed),
                        "eta_seconds": None if eta is None else round(eta, 1)})

    def _json(self, payload: dict[str, object]) -> None:
        self.out.write(json.dumps(payload) + "\n")
        self.out.flush()

    def _write_status(self, event: PullEvent) -> None:
        data = event.to_dict()
        if event.status == "success":
            extra = " (already here)" if data.get("already_present") else ""
            self.out.write(f"pulled {event.model}{extra}\n")
        elif event.status == "error":
            self.out.write(f"error: {data.get('error', {})}\n")
        elif event.status == "waiting" and "reason" in data:
            self.out.write(f"{data['reason']}\n")
        self.out.flush()

    def _bar(self, event: PullEvent, speed: float, eta: float | None) -> None:
        if self._file is not None and self._file != f"{event.status}:{event.file}":
            self.finish_line()
        self._file = f"{event.status}:{event.file}"
        frac = event.completed / event.total if event.total else 1.0
        width = 24
        filled = int(frac * width)
        name = (event.file or "")[-36:]
        eta_text = "--:--" if eta is None else f"{int(eta // 60):02d}:{int(eta % 60):02d}"
        verb = {"verifying": "sha256", "waiting": "joined"}.get(event.status, "")
        self.out.write(f"\r{name:36} {verb:6} [{'#' * filled}{'.' * (width - filled)}] "
                       f"{frac * 100:5.1f}% {_size(event.completed)}/{_size(event.total)} "
                       f"{_size(speed)}/s ETA {eta_text}   ")
        self.out.flush()

    def finish_line(self) -> None:
        if self._file is not None:
            self.out.write("\n")
            self._file = None

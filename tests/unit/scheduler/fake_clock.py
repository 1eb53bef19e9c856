"""A clock that moves only when a test says so, with the timers of app.scheduler.clock.Clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Timer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.t = start
        self._timers: list[_Timer] = []

    def now(self) -> float:
        return self.t

    def call_at(self, when: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(when, callback)
        self._timers.append(timer)
        return timer

    def pending(self) -> list[float]:
        return sorted(t.when for t in self._timers if not t.cancelled)

    async def advance(self, seconds: float) -> None:
        """Move time on, firing due timers in order, and let the event loop run."""
        end = self.t + seconds
        while True:
            due = sorted((t for t in self._timers if not t.cancelled and t.when <= end),
                         key=lambda t: t.when)
            if not due:
                break
            timer = due[0]
            self._timers.remove(timer)
            self.t = max(self.t, timer.when)
            timer.callback()
            await settle()
        self.t = end
        await settle()


async def settle(rounds: int = 20) -> None:
    """Let every ready task run (no wall-clock waiting)."""
    for _ in range(rounds):
        await asyncio.sleep(0)

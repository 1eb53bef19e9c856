"""Time for the scheduler driver: a monotonic clock and one-shot timers (injectable for tests)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Protocol


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now(self) -> float: ...

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        """Run `callback` on the event loop once `now()` reaches `when`."""
        ...


class LoopClock:
    """time.monotonic and the running event loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        delay = max(0.0, when - self.now())
        return asyncio.get_running_loop().call_later(delay, callback)

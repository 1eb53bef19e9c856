"""What the scheduler needs from an engine (the real one is app.engine.client.EngineClient)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol

from app.engine.client import (
    Embedded,
    EmbedRequest,
    Event,
    Failed,
    GenerateRequest,
    LoadReport,
    WorkerSpec,
    WorkerStats,
)


class Engine(Protocol):
    spec: WorkerSpec
    report: LoadReport

    @property
    def pid(self) -> int: ...

    @property
    def alive(self) -> bool: ...

    async def stats(self) -> WorkerStats: ...

    def generate(self, req: GenerateRequest) -> AsyncIterator[Event]: ...

    async def embed(self, req: EmbedRequest) -> Embedded | Failed: ...

    async def stop(self, timeout: float = 10.0) -> None: ...

    async def exited(self) -> str:
        """Wait until the worker process is gone (a crash or a stop); why, in words."""
        ...


EngineFactory = Callable[[WorkerSpec], Awaitable[Engine]]

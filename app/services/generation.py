"""One generation: lease the model, run the request, hand events to the HTTP layer.

The work runs in a pump task that feeds a queue, so the HTTP layer can wait for the
first event with a timeout (errors before the first byte become plain HTTP errors) and
cancel cleanly on disconnect (closing the engine's iterator cancels the request in the
worker and frees its slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from app.engine.client import Event, Failed, GenerateRequest
from app.errors import (
    ContextLengthExceeded,
    EngineError,
    HaloError,
    InvalidRequest,
)
from app.metrics import RequestTracker
from app.scheduler.scheduler import Scheduler

log = logging.getLogger(__name__)

_END = object()


def error_from(failed: Failed) -> HaloError:
    """Translate a worker failure into the domain error the client sees."""
    if failed.code == "context_length_exceeded":
        return ContextLengthExceeded(failed.message, param="messages", **dict(failed.details))
    if failed.code in {"no_chat_template", "template_error", "invalid_n", "invalid_request"}:
        return InvalidRequest(failed.message, param=failed.details.get("param"))
    return EngineError(f"{failed.code}: {failed.message}")


class Generation:
    def __init__(self, scheduler: Scheduler, model_id: str, request: GenerateRequest,
                 tracker: RequestTracker) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._pending: object | None = None
        self._tracker = tracker
        self._task = asyncio.create_task(self._pump(scheduler, model_id, request))

    async def _pump(self, scheduler: Scheduler, model_id: str, request: GenerateRequest) -> None:
        status = "ok"
        try:
            async with scheduler.lease(model_id) as engine:
                async for event in engine.generate(request):
                    self._tracker.on_event(event)
                    if isinstance(event, Failed):
                        status = event.code
                    self._queue.put_nowait(event)
        except HaloError as exc:
            status = exc.code
            self._queue.put_nowait(exc)
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:  # an engine bug must not hang the client
            status = "internal_error"
            log.exception("generation failed", extra={"model": model_id})
            self._queue.put_nowait(EngineError(f"generation failed: {exc}"))
        finally:
            self._tracker.close(status)
            self._queue.put_nowait(_END)

    async def first(self, timeout: float | None) -> Event | None:
        """The first event, or None if it takes longer than ``timeout``.

        Raises the domain error if the request fails before producing anything.
        """
        try:
            item = await asyncio.wait_for(self._peek(), timeout)
        except TimeoutError:
            return None
        if isinstance(item, HaloError):
            await self.close()
            raise item
        if isinstance(item, Failed):
            await self.close()
            raise error_from(item)
        return item  # type: ignore[return-value]

    async def _peek(self) -> object:
        item = await self._queue.get()
        self._pending = item
        return item

    async def events(self) -> AsyncIterator[Event]:
        """All events (including the one ``first`` returned); raises on a failure."""
        pending, self._pending = self._pending, None
        if pending is not None:
            yield pending  # type: ignore[misc]  # first() raised for failures
        while True:
            item = await self._queue.get()
            if item is _END:
                return
            if isinstance(item, HaloError):
                raise item
            if isinstance(item, Failed):
                raise error_from(item)
            yield item  # type: ignore[misc]

    async def close(self) -> None:
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

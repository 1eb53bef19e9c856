"""The generation service: one request's lease -> generate -> reply events, for every protocol.

A protocol adapter turns its wire request into a `GenerationJob` (an engine request plus
how to read the model's text), then either

* `await service.stream(job)`: a started `Generation`, an async iterator of `ReplyEvent`s
  (errors before the first event are raised here, as domain errors, before any byte is
  written; errors later are raised from the iteration), or
* `await service.collect(job, cancel_when=...)`: the `Reply` folded from the same events.

The work runs in a pump task that feeds a queue, so the caller can wait for the first event
with a timeout and cancel cleanly on disconnect (closing the engine's iterator cancels the
request in the worker and frees its slot).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass

from app.catalog.catalog import Catalog, ModelEntry
from app.engine.client import Failed, GenerateRequest, Speculation
from app.errors import (
    ContextLengthExceeded,
    EngineCode,
    EngineError,
    HaloError,
    InvalidRequest,
    ModelNotFound,
    engine_failure,
)
from app.metrics import Metrics
from app.scheduler.driver import Scheduler
from app.services.events import Reply, ReplyEvent
from app.services.reply import ReplyOptions, ReplyStream
from app.services.safety import check_request

log = logging.getLogger(__name__)

_END = object()
# no tokenizer turns more characters than this into one token: longer prompts cannot fit
# and are refused before a worker spends time tokenizing them
MAX_CHARS_PER_TOKEN = 64
RETRIES_AFTER_CRASH = 1  # a request the worker had not started when it died runs again


@dataclass(frozen=True)
class GenerationJob:
    """What to run (`request`) on which model, and how to read the text (`options`)."""

    model: ModelEntry
    request: GenerateRequest
    options: ReplyOptions


def error_from(failed: Failed) -> HaloError:
    """Translate a worker failure into the domain error the client sees."""
    return engine_failure(failed.code, failed.message, dict(failed.details))


class Generation:
    """A running request: iterate for reply events; always `close()` (idempotent)."""

    def __init__(self, service: GenerationService, job: GenerationJob) -> None:
        self._queue: asyncio.Queue[object] = asyncio.Queue()
        self._pending: list[ReplyEvent] = []
        self._reply = ReplyStream(job.options)
        self._status = "ok"
        self._tracker = service.metrics.track(job.model.id)
        self._task = asyncio.create_task(self._pump(service.scheduler, job))

    async def _pump(self, scheduler: Scheduler, job: GenerationJob) -> None:
        status = "ok"
        try:
            for attempt in range(1 + RETRIES_AFTER_CRASH):
                if not await self._attempt(scheduler, job, last=attempt == RETRIES_AFTER_CRASH):
                    break
                log.warning("worker crashed before request %s started; retrying it",
                            job.request.request_id, extra={"model": job.model.id})
            status = self._status
        except HaloError as exc:
            status = exc.code
            self._queue.put_nowait(exc)
        except asyncio.CancelledError:
            status = "cancelled"
            raise
        except Exception as exc:  # an engine bug must not hang the client
            status = "internal_error"
            log.exception("generation failed", extra={"model": job.model.id})
            self._queue.put_nowait(EngineError(f"generation failed: {exc}"))
        finally:
            self._tracker.close(status)
            self._queue.put_nowait(_END)

    async def _attempt(self, scheduler: Scheduler, job: GenerationJob, last: bool) -> bool:
        """Run the request once; True to retry it (the worker died before it started, so
        another request killed it and nothing of this one reached the client)."""
        started = False
        async with scheduler.lease(job.model.id, sequences=job.request.n) as engine:
            events = engine.generate(job.request)
            try:
                async for event in events:
                    if (not started and not last and isinstance(event, Failed)
                            and event.code is EngineCode.WORKER_CRASHED):
                        return True
                    started = True
                    self._tracker.on_event(event)
                    if isinstance(event, Failed):
                        self._status = event.code
                    self._queue.put_nowait(event)
            finally:
                close = getattr(events, "aclose", None)
                if close is not None:
                    await close()
        return False

    async def _next(self) -> list[ReplyEvent] | None:
        """Reply events of the next engine event; None at the end; raises failures."""
        item = await self._queue.get()
        if item is _END:
            self._queue.put_nowait(_END)  # later calls see the end too
            return None
        if isinstance(item, HaloError):
            raise item
        if isinstance(item, Failed):
            raise error_from(item)
        assert not isinstance(item, Failed)
        return self._reply.feed(item)  # type: ignore[arg-type]

    async def first(self, timeout: float | None) -> bool:
        """Wait up to `timeout` for the first event; raises the domain error if the request
        fails before producing anything. False if nothing came in time."""
        try:
            events = await asyncio.wait_for(self._next(), timeout)
        except TimeoutError:
            return False
        except BaseException:
            await self.close()
            raise
        self._pending.extend(events or ())
        return True

    def __aiter__(self) -> AsyncIterator[ReplyEvent]:
        return self._events()

    async def _events(self) -> AsyncIterator[ReplyEvent]:
        pending, self._pending = self._pending, []
        for event in pending:
            yield event
        while (events := await self._next()) is not None:
            for event in events:
                yield event

    async def close(self) -> None:
        if not self._task.done():
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _speculation(asked: Speculation | None, entry: ModelEntry) -> Speculation | None:
    """A request's speculative setting checked against the model (max 0: the model's)."""
    if asked is None:
        return None
    limit = entry.speculative.max
    if asked.type == "draft" and entry.draft_id is None:
        raise InvalidRequest(f"model '{entry.id}' has no draft model (set draft in "
                             "models.toml)", param="speculative")
    if asked.max > limit:
        raise InvalidRequest(f"speculative.max is at most {limit} for model '{entry.id}'",
                             param="speculative")
    return Speculation(asked.type, asked.max or limit, asked.budget or entry.speculative.budget)


class GenerationService:
    """Runs generation jobs on the scheduler's workers (one per app, see factory)."""

    def __init__(self, catalog: Catalog, scheduler: Scheduler, metrics: Metrics,
                 commit_seconds: float = 5.0) -> None:
        self.catalog = catalog
        self.scheduler = scheduler
        self.metrics = metrics
        self.commit_seconds = commit_seconds

    def model(self, model_id: str) -> ModelEntry:
        """The catalog entry of `model_id`, or ModelNotFound."""
        entry = self.catalog.get(model_id)
        if entry is None:
            raise ModelNotFound(f"The model '{model_id}' does not exist", param="model")
        return entry

    def job(self, entry: ModelEntry, request: GenerateRequest,
            options: ReplyOptions) -> GenerationJob:
        """A job after the checks every protocol shares (slots, vocabulary, safe text)."""
        if request.n > entry.parallel:
            raise InvalidRequest(
                f"n={request.n} exceeds the {entry.parallel} parallel slots of model "
                f"'{entry.id}'", param="n")
        vocab = entry.file.info.vocab_size
        for token in request.logit_bias:
            if token < 0 or (vocab is not None and token >= vocab):
                raise InvalidRequest(f"logit_bias token id {token} is outside the vocabulary"
                                     + (f" (size {vocab})" if vocab else ""), param="logit_bias")
        check_request(request)
        request.speculative = _speculation(request.speculative, entry)
        cap = entry.max_tokens
        if cap is not None and (request.max_tokens is None or request.max_tokens > cap):
            request.max_tokens = cap  # models.toml's cap: less may be asked for, not more
        request.stop = [*request.stop, *(s for s in entry.stop if s not in request.stop)]
        chars = len(request.prompt or "") + sum(len(str(m.get("content") or ""))
                                                for m in request.messages or ())
        if chars > entry.n_ctx * MAX_CHARS_PER_TOKEN:
            raise ContextLengthExceeded(
                f"the prompt has {chars} characters; it cannot fit this model's context of "
                f"{entry.n_ctx} tokens per request",
                param="prompt" if request.prompt is not None else "messages")
        if options.n != request.n:
            options = ReplyOptions(request.n, options.reasoning, options.include_reasoning,
                                   options.tool_names, options.one_call)
        return GenerationJob(entry, request, options)

    async def stream(self, job: GenerationJob) -> Generation:
        """Start `job`; returns once its first event is in (or after the commit time, so
        keep-alives can flow during a long load). Raises errors that come before that."""
        generation = Generation(self, job)
        await generation.first(timeout=self.commit_seconds)
        return generation

    async def collect(self, job: GenerationJob,
                      cancel_when: Awaitable[None] | None = None) -> Reply | None:
        """The whole reply; None if `cancel_when` finished first (the request is cancelled)."""
        generation = Generation(self, job)
        reply = Reply(job.options.n)

        async def consume() -> None:
            async for event in generation:
                reply.add(event)

        consumer = asyncio.ensure_future(consume())
        watcher = asyncio.ensure_future(cancel_when) if cancel_when is not None else None
        try:
            await asyncio.wait({consumer} if watcher is None else {consumer, watcher},
                               return_when=asyncio.FIRST_COMPLETED)
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
            if not consumer.done():  # the client went away: stop generating
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            await generation.close()
        if consumer.cancelled():
            return None
        consumer.result()  # re-raises the domain error
        return reply

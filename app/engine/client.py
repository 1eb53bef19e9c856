"""Front-side async handle of one worker process (never imports llama_cpp).

`EngineClient.start` spawns `python -m app.engine.worker` with one end of a Unix
socketpair and waits for the load report. Afterwards the channel's protocol demultiplexes
each incoming frame (one per decode step) straight into per-request queues, and a watch
task waits for the channel to close. `generate` is an async generator: closing it early
sends a cancel. If the worker dies, every active request gets Failed(WORKER_CRASHED), except
the request whose input it was working on alone (ipc.Guard), which gets CRASHED_WORKER.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
from collections.abc import AsyncGenerator, Callable
from pathlib import Path

from app.engine import ipc
from app.engine.exits import explain_exit
from app.engine.schema import (
    Accepted,
    ChoiceEnd,
    Embedded,
    EmbedRequest,
    EngineLoadError,
    Event,
    Failed,
    Finished,
    GenerateRequest,
    LoadReport,
    Speculation,
    TextDelta,
    TokenLogprob,
    WorkerSpec,
    WorkerStats,
)
from app.engine.spawn import log_tail, spawn_worker
from app.errors import EngineCode
from app.hardware.nodes import reachable

__all__ = [
    "Accepted",
    "ChoiceEnd",
    "EmbedRequest",
    "Embedded",
    "EngineClient",
    "EngineLoadError",
    "EngineUnavailableError",
    "Event",
    "Failed",
    "Finished",
    "GenerateRequest",
    "LoadReport",
    "Speculation",
    "TextDelta",
    "TokenLogprob",
    "WorkerSpec",
    "WorkerStats",
]

logger = logging.getLogger(__name__)

_KILL_GRACE_S = 3.0


class EngineUnavailableError(RuntimeError):
    """The worker is not running (stopped or crashed)."""


class EngineClient:
    """Handle of one running worker: generate, stats, stop."""

    def __init__(
        self,
        spec: WorkerSpec,
        proc: asyncio.subprocess.Process,
        channel: ipc.FrameProtocol,
        log_path: Path,
        report: LoadReport,
    ) -> None:
        self.spec = spec
        self.report = report
        self.log_path = log_path
        self._proc = proc
        self._channel = channel
        self._queues: dict[str, asyncio.Queue[Event]] = {}
        self._stats_waiters: dict[int, asyncio.Future[WorkerStats]] = {}
        self._query_ids = itertools.count(1)
        self._stopping = False
        self._dead = False
        self._exit_reason = "the worker process exited"
        self._guarded: str | None = None  # request whose input native code is working on
        self._stop_lock = asyncio.Lock()
        self._closed = asyncio.Event()
        self.failure: str | None = None  # why the worker died, once it has
        channel.on_message = self._dispatch
        channel.on_close = self._closed.set
        if channel.closed:
            self._closed.set()
        self._watch_task = asyncio.create_task(self._watch(), name=f"engine-{spec.model_id}")

    @classmethod
    async def start(
        cls,
        spec: WorkerSpec,
        *,
        timeout: float = 600.0,
        on_progress: Callable[[float], None] | None = None,
    ) -> EngineClient:
        """Spawn the worker and wait until the model is loaded; raises EngineLoadError."""
        spawned = await spawn_worker(spec)
        proc, log_path = spawned.proc, spawned.log_path
        logger.info("worker %d started for %s (log %s)", proc.pid, spec.model_id, log_path)
        inbox: asyncio.Queue[ipc.ToWorker | ipc.ToFront | None] = asyncio.Queue()
        _, channel = await asyncio.get_running_loop().create_unix_connection(
            lambda: ipc.FrameProtocol(inbox.put_nowait, lambda: inbox.put_nowait(None)),
            sock=spawned.sock,
        )
        try:
            channel.send(ipc.Load(spec))
            async with asyncio.timeout(timeout):
                report = await cls._await_loaded(spec, proc, inbox, log_path, on_progress)
        except BaseException as exc:
            channel.close()
            if proc.returncode is None:
                proc.kill()
            await proc.wait()
            if not isinstance(exc, EngineLoadError):  # a failed load keeps its log to read
                log_path.unlink(missing_ok=True)
            if isinstance(exc, TimeoutError):
                raise EngineLoadError(f"loading took longer than {timeout:.0f} s") from exc
            raise
        return cls(spec, proc, channel, log_path, report)

    @staticmethod
    async def _await_loaded(
        spec: WorkerSpec,
        proc: asyncio.subprocess.Process,
        inbox: asyncio.Queue[ipc.ToWorker | ipc.ToFront | None],
        log_path: Path,
        on_progress: Callable[[float], None] | None,
    ) -> LoadReport:
        while True:
            msg = await inbox.get()
            if msg is None:
                code = await proc.wait()
                message = explain_exit(spec.model_id, code, log_tail(log_path), loading=True)
                message = await _name_dead_nodes(spec, message)
                logger.error("%s (log kept at %s)", message, log_path)
                raise EngineLoadError(message)
            if isinstance(msg, ipc.Progress):
                if on_progress is not None:
                    on_progress(msg.value)
            elif isinstance(msg, ipc.Loaded):
                return msg.report
            elif isinstance(msg, ipc.LoadFailed):
                raise EngineLoadError(msg.reason)

    @property
    def pid(self) -> int:
        return self._proc.pid

    @property
    def alive(self) -> bool:
        return not self._dead and self._proc.returncode is None

    async def exited(self) -> str:
        """Wait until the worker process is gone; why it ended, in words."""
        await asyncio.wait({self._watch_task})
        return self._exit_reason

    async def stats(self) -> WorkerStats:
        """Slots and queue of the worker; raises EngineUnavailableError if it is gone."""
        if not self.alive:
            raise EngineUnavailableError(f"worker for {self.spec.model_id} is not running")
        query_id = next(self._query_ids)
        fut: asyncio.Future[WorkerStats] = asyncio.get_running_loop().create_future()
        self._stats_waiters[query_id] = fut
        self._channel.send(ipc.StatsQuery(query_id))
        try:
            return await fut
        finally:
            self._stats_waiters.pop(query_id, None)

    async def embed(self, req: EmbedRequest) -> Embedded | Failed:
        """The vectors of one embedding request (cancelled in the worker if abandoned)."""
        async with contextlib.aclosing(self.generate(req)) as events:
            async for event in events:
                if isinstance(event, Embedded | Failed):
                    return event
        return Failed(EngineCode.WORKER_CRASHED, "the worker ended the request without a result",
                      {})

    async def generate(self, req: GenerateRequest | EmbedRequest) -> AsyncGenerator[Event, None]:
        """Events of one request; closing the iterator early cancels it in the worker."""
        rid = req.request_id
        if rid in self._queues:
            raise ValueError(f"request id {rid!r} is already running")
        if not self.alive:
            code = EngineCode.WORKER_STOPPED if self._stopping else EngineCode.WORKER_CRASHED
            yield Failed(code, f"worker for {self.spec.model_id} is not running", {})
            return
        q: asyncio.Queue[Event] = asyncio.Queue()
        self._queues[rid] = q
        ended = False
        try:
            self._channel.send(ipc.Submit(req))
            while True:
                event = await q.get()
                ended = isinstance(event, Finished | Failed | Embedded)
                yield event
                if ended:
                    return
        finally:
            self._queues.pop(rid, None)
            if not ended:
                self._channel.send(ipc.Cancel(rid))

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop gracefully (running requests get Failed("worker_stopped")), else kill."""
        async with self._stop_lock:
            self._stopping = True
            proc = self._proc
            if proc.returncode is None:
                self._channel.send(ipc.Stop())
                try:
                    await asyncio.wait_for(proc.wait(), timeout)
                except TimeoutError:
                    logger.warning("worker %d did not stop in %.0f s; killing", proc.pid, timeout)
                    proc.kill()
                    await proc.wait()
            self._channel.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._watch_task), _KILL_GRACE_S)
            except TimeoutError:
                self._watch_task.cancel()
            self.log_path.unlink(missing_ok=True)

    # internals
    def _dispatch(self, msg: ipc.ToWorker | ipc.ToFront) -> None:
        if isinstance(msg, ipc.Step):
            queues = self._queues
            for rid, event in msg.events:
                q = queues.get(rid)
                if q is not None:
                    q.put_nowait(event)
        elif isinstance(msg, ipc.Guard):
            self._guarded = msg.request_id
        elif isinstance(msg, ipc.StatsReply):
            fut = self._stats_waiters.get(msg.query_id)
            if fut is not None and not fut.done():
                fut.set_result(msg.stats)

    async def _watch(self) -> None:
        """Wait for the channel to close, then reap the process and fail what still waits."""
        await self._closed.wait()
        self._dead = True
        proc = self._proc
        if proc.returncode is None:
            try:
                await asyncio.wait_for(proc.wait(), _KILL_GRACE_S)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        if self._stopping:
            code, message = EngineCode.WORKER_STOPPED, "the model was unloaded"
        else:
            tail = log_tail(self.log_path, errors_only=True)
            code = EngineCode.WORKER_CRASHED
            message = explain_exit(self.spec.model_id, proc.returncode, tail, loading=False)
            message = await _name_dead_nodes(self.spec, message)
            self.failure = message
            logger.error("%s (log kept at %s)", message, self.log_path)
        self._exit_reason = message
        details = {"exit_code": proc.returncode}
        culprit = None if self._stopping else self._guarded
        if culprit is not None:
            logger.error("request %s crashed the worker of %s", culprit, self.spec.model_id)
        for rid, q in self._queues.items():
            if rid == culprit:
                q.put_nowait(Failed(EngineCode.CRASHED_WORKER,
                                    "this request crashed the model's worker; it was refused "
                                    "and the model will be restarted", details))
            else:
                q.put_nowait(Failed(code, message, details))
        for fut in self._stats_waiters.values():
            if not fut.done():
                fut.set_exception(EngineUnavailableError(message))


async def _name_dead_nodes(spec: WorkerSpec, message: str) -> str:
    """A worker that used RPC nodes died: name the nodes that no longer accept connections
    (llama.cpp aborts the whole process when a node's connection fails)."""
    if not spec.rpc_nodes:
        return message
    up = await asyncio.gather(*(reachable(n, timeout=1.0) for n in spec.rpc_nodes))
    down = [n for n, ok in zip(spec.rpc_nodes, up, strict=True) if not ok]
    if not down:
        return message
    return f"RPC node {', '.join(down)} stopped answering ({message})"

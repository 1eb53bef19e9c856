"""Worker process entry: `python -m app.engine.worker --fd N`.

Talks to the front over the inherited Unix socket `N` (never stdout/stderr, which native
code writes to). A reader thread turns incoming frames into an inbox; the main thread
loads the model, then alternates between draining the inbox and one decode step.
If the front goes away (end of stream) the worker stops; it never outlives the front.
"""

from __future__ import annotations

import argparse
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from dataclasses import replace

from app.engine import ipc
from app.engine.draft import Drafter, check_vocab
from app.engine.embed_loop import POOLING_NAMES, EmbedLoop
from app.engine.exits import explain_load_failure
from app.engine.loop import DecodeLoop
from app.engine.memory import LlamaLog, rss_bytes
from app.engine.model import LlamaModel, ModelLoadError, install_log, uninstall_log
from app.engine.schema import Event, LoadReport, Speculation, WorkerSpec
from app.errors import EngineCode

logger = logging.getLogger(__name__)

_EOF = object()
_EXIT_GRACE_S = 10.0

Inbox = queue.SimpleQueue[object]


def _reader(sock: socket.socket, inbox: Inbox, loaded: threading.Event) -> None:
    """Read frames into `inbox`; at end of stream stop the worker (by force if need be)."""
    try:
        while True:
            msg = ipc.recv_sync(sock)
            if msg is None:
                break
            inbox.put(msg)
    except (OSError, ValueError) as exc:
        logger.warning("IPC read failed: %s", exc)
    if not loaded.is_set():
        os._exit(1)  # the front is gone while loading: nobody to report to
    inbox.put(_EOF)
    time.sleep(_EXIT_GRACE_S)
    os._exit(1)


class _Sender:
    """Frames messages onto the socket (main thread only)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._last_progress = -1.0

    def send(self, msg: ipc.ToFront) -> None:
        self._sock.sendall(ipc.encode(msg))

    def events(self, events: list[tuple[str, Event]]) -> None:
        self.send(ipc.Step(events))

    def progress(self, value: float) -> None:
        if value >= 1.0 or value - self._last_progress >= 0.02:
            self._last_progress = value
            self.send(ipc.Progress(value))


Loop = DecodeLoop | EmbedLoop


def _load(spec: WorkerSpec, sender: _Sender, log: LlamaLog) -> Loop | None:
    """Load the model and build its loop; None (after LoadFailed) on failure."""
    t0 = time.perf_counter()
    try:
        model = LlamaModel(spec, sender.progress)
    except ModelLoadError as exc:
        sender.send(ipc.LoadFailed(_reason(spec, exc, log)))
        return None
    drafter: Drafter | None = None
    try:
        if spec.draft_path is not None and not spec.embedding:
            drafter = _load_draft(spec, model)
        loop: Loop = (EmbedLoop(model, spec, sender.events) if spec.embedding
                      else DecodeLoop(model, spec, sender.events, drafter))
        model.warm_up(spec.n_batch)
        if drafter is not None:
            drafter.model.warm_up(spec.n_batch)
    except (ModelLoadError, ValueError) as exc:
        if drafter is not None:
            drafter.close()
        model.close()
        sender.send(ipc.LoadFailed(_reason(spec, exc, log)))
        return None
    sizes = log.sizes
    sender.send(
        ipc.Loaded(
            LoadReport(
                pid=os.getpid(),
                load_seconds=time.perf_counter() - t0,
                n_ctx=spec.n_ctx,
                parallel=spec.parallel,
                n_ctx_train=model.n_ctx_train,
                n_vocab=model.n_vocab,
                model_bytes=sizes.model or model.model_size,
                kv_bytes=sizes.kv,
                compute_bytes=sizes.compute,
                rss_bytes=rss_bytes(),
                has_chat_template=bool(spec.chat_template or model.chat_template),
                backend_devices=log.backend_devices(),
                node_bytes=tuple(sorted(sizes.nodes.items())),
                cpu_variant=model.backends.cpu_variant,
                n_embd=model.n_embd,
                pooling=POOLING_NAMES.get(model.pooling, "") if spec.embedding else "",
            )
        )
    )
    logger.info("loaded %s (%d slots x %d ctx)", spec.model_id, spec.parallel, spec.n_ctx)
    return loop


def _load_draft(spec: WorkerSpec, target: LlamaModel) -> Drafter:
    """The draft model in a context of its own (same slots), checked against the target."""
    assert spec.draft_path is not None
    draft_spec = replace(spec, model_path=spec.draft_path, speculative=Speculation("off", 0),
                         chat_template=None, draft_path=None)
    model = LlamaModel(draft_spec, lambda _value: None)
    try:
        check_vocab(target, model)
    except ModelLoadError:
        model.close()
        raise
    return Drafter(model, spec.parallel, spec.n_batch, target.n_vocab)


def _reason(spec: WorkerSpec, exc: Exception, log: LlamaLog) -> str:
    return explain_load_failure(spec.model_id, [*log.errors, str(exc)])


def _serve(loop: Loop, inbox: Inbox, sender: _Sender) -> None:
    """Drain the inbox (blocking only when idle), then decode one step; until stopped."""
    while True:
        block = loop.idle
        stopping = False
        while True:
            try:
                msg = inbox.get(block=block)
            except queue.Empty:
                break
            block = False
            if isinstance(msg, ipc.Submit):
                sender.send(ipc.Guard(msg.request.request_id))
                loop.submit(msg.request)
                sender.send(ipc.Guard(None))
            elif isinstance(msg, ipc.Cancel):
                loop.cancel(msg.request_id)
            elif isinstance(msg, ipc.StatsQuery):
                sender.send(ipc.StatsReply(msg.query_id, loop.stats()))
            elif isinstance(msg, ipc.Stop) or msg is _EOF:
                stopping = True
        if stopping:
            loop.fail_all(EngineCode.WORKER_STOPPED, "the model was unloaded")
            return
        with loop.model.step():  # with RPC nodes: a step that hangs on a node ends the worker
            loop.step()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.engine.worker")
    parser.add_argument("--fd", type=int, required=True, help="inherited Unix socket")
    args = parser.parse_args(argv)
    # Ctrl-C in a terminal reaches the whole process group: the front decides when we stop
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    sock = socket.socket(fileno=args.fd)
    inbox: Inbox = queue.SimpleQueue()
    loaded = threading.Event()
    threading.Thread(target=_reader, args=(sock, inbox, loaded), daemon=True).start()
    first = inbox.get()
    if not isinstance(first, ipc.Load):
        logger.error("expected Load, got %r", first)
        return 2
    sender = _Sender(sock)
    log = LlamaLog(sink=sys.stderr)
    log_callback = install_log(log)
    try:
        loop = _load(first.spec, sender, log)
        loaded.set()
        if loop is None:
            return 1
        try:
            _serve(loop, inbox, sender)
        except (BrokenPipeError, ConnectionError):
            logger.warning("front went away; exiting")
        finally:
            loop.close()
    finally:
        uninstall_log()
        del log_callback
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The worker loop of a model served in embedding mode: pooled vectors, many inputs a decode.

Each step packs as many pending inputs as fit (at most `parallel` sequences and `n_batch`
tokens; an encoder needs the whole batch in one ubatch) into one llama_decode, one sequence
id per input, then reads each sequence's pooled vector and L2-normalises it. A request's
inputs may span several steps; its `Embedded` event goes out when the last one is done.
Identical inputs of a request are embedded once (so their vectors are identical: the same
input at another position of a batch can differ in the last bits of a float).
"""

from __future__ import annotations

import ctypes
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import llama_cpp.llama_cpp as lc

from app.engine.batch import Batch
from app.engine.memory import rss_bytes
from app.engine.model import POOLING, LlamaModel
from app.engine.schema import (
    Embedded,
    EmbedRequest,
    Event,
    Failed,
    GenerateRequest,
    WorkerSpec,
    WorkerStats,
)
from app.errors import EngineCode

logger = logging.getLogger(__name__)

POOLING_NAMES = {v: k for k, v in POOLING.items()}
Send = Callable[[list[tuple[str, Event]]], None]


@dataclass(eq=False)
class _Job:
    req: EmbedRequest
    tokens: list[list[int]]  # distinct inputs, each embedded once
    vectors: list[bytes | None]  # per distinct input
    order: list[int]  # input i -> its distinct input (identical inputs, identical vectors)
    prompt_tokens: int
    next: int = 0  # first input not yet in a batch
    done: int = 0
    truncated: int = 0
    t_submit: float = field(default_factory=time.perf_counter)

    @property
    def request_id(self) -> str:
        return self.req.request_id


class EmbedLoop:
    """Owns the embedding jobs of one worker; `step()` embeds one batch."""

    def __init__(self, model: LlamaModel, spec: WorkerSpec, send: Send) -> None:
        self.model = model
        self.n_ctx = spec.n_ctx
        self.max_seqs = spec.parallel
        self.capacity = max(spec.n_batch, spec.n_ctx)
        self.batch = Batch(self.capacity)
        self.queue: deque[_Job] = deque()
        self._send = send
        self._events: list[tuple[str, Event]] = []
        self.pooling = model.pooling
        if self.pooling == POOLING["none"]:
            raise ValueError("embedding mode needs a pooling type (mean, cls, last or rank)")
        # a rank (reranker) head returns n_cls_out scores, pooled models n_embd values
        self.dim = model.n_cls_out if self.pooling == POOLING["rank"] else model.n_embd

    @property
    def idle(self) -> bool:
        return not self.queue

    def stats(self) -> WorkerStats:
        return WorkerStats(slots_total=self.max_seqs, slots_busy=0,
                           requests_active=len(self.queue), requests_queued=0,
                           rss_bytes=rss_bytes())

    # messages from the front
    def submit(self, req: EmbedRequest | GenerateRequest) -> None:
        """Queue `req`, or answer it with Failed; an error here never reaches other jobs."""
        try:
            self._submit(req)
        except Exception as exc:  # a bug or unexpected input: fail this request only
            logger.exception("request %s failed before it was queued", req.request_id)
            self._emit(req.request_id, Failed(EngineCode.INTERNAL,
                                              f"the request could not be started: {exc!r}"))

    def _submit(self, req: EmbedRequest | GenerateRequest) -> None:
        if not isinstance(req, EmbedRequest):
            self._emit(req.request_id, Failed(
                EngineCode.INVALID_REQUEST, "this model is served in embedding mode: it embeds, "
                "it does not generate", {"param": "model"}))
            return
        tokens: list[list[int]] = []
        truncated = 0
        for i, item in enumerate(req.inputs):
            toks = (self.model.tokenize(item, add_special=req.add_special)
                    if isinstance(item, str) else list(item))
            bad = [t for t in toks if not 0 <= t < self.model.n_vocab]
            if bad:
                self._fail(req, f"input[{i}] has token id {bad[0]} outside "
                           f"the vocabulary (size {self.model.n_vocab})", "input")
                return
            if not toks:
                self._fail(req, f"input[{i}] is empty", "input")
                return
            if len(toks) > self.n_ctx:
                if not req.truncate:
                    self._emit(req.request_id, Failed(
                        EngineCode.CONTEXT_LENGTH_EXCEEDED,
                        f"input[{i}] has {len(toks)} tokens, more than the model's context of "
                        f"{self.n_ctx}", {"param": "input", "prompt_tokens": len(toks),
                                          "n_ctx": self.n_ctx}))
                    return
                toks = toks[:self.n_ctx]
                truncated += 1
            tokens.append(toks)
        first: dict[tuple[int, ...], int] = {}
        order = [first.setdefault(tuple(toks), len(first)) for toks in tokens]
        distinct = [list(key) for key in first]
        job = _Job(req, distinct, [None] * len(distinct), order,
                   sum(len(t) for t in tokens), truncated=truncated)
        if not tokens:
            self._finish(job)
            return
        self.queue.append(job)

    def _fail(self, req: EmbedRequest, message: str, param: str) -> None:
        self._emit(req.request_id, Failed(EngineCode.INVALID_REQUEST, message, {"param": param}))

    def cancel(self, request_id: str) -> None:
        for job in self.queue:
            if job.request_id == request_id:
                self.queue.remove(job)
                return

    def fail_all(self, code: EngineCode, message: str) -> None:
        for job in self.queue:
            self._emit(job.request_id, Failed(code, message, {}))
        self.queue.clear()
        self.flush()

    def close(self) -> None:
        self.queue.clear()
        self._events.clear()
        self.batch.free()
        self.model.close()

    def flush(self) -> None:
        if self._events:
            events, self._events = self._events, []
            self._send(events)

    # the step
    def step(self) -> None:
        """Embed as many pending inputs as fit into one decode; flushes the step's events."""
        batch = self.batch
        batch.clear()
        placed: list[tuple[_Job, int]] = []  # (job, input index) per sequence id
        for job in self.queue:
            while job.next < len(job.tokens) and len(placed) < self.max_seqs:
                toks = job.tokens[job.next]
                if batch.n + len(toks) > batch.capacity:
                    break
                batch.add_run_all(toks, len(placed))
                placed.append((job, job.next))
                job.next += 1
            if job.next < len(job.tokens):
                break  # keep input order: a later job waits for this one
        if not placed:
            self.flush()
            return
        rc = batch.decode(self.model.ctx)
        if rc != 0:
            self._decode_failed(rc, {id(job): job for job, _ in placed})
        else:
            for seq, (job, index) in enumerate(placed):
                job.vectors[index] = self._vector(seq, job.req.normalize)
                job.done += 1
        lc.llama_memory_clear(self.model.mem, True)
        for job in [j for j in self.queue if j.done == len(j.tokens)]:
            self.queue.remove(job)
            self._finish(job)
        self.flush()

    # internals
    def _emit(self, request_id: str, event: Event) -> None:
        self._events.append((request_id, event))

    def _vector(self, seq: int, normalize: bool) -> bytes:
        ptr = lc.llama_get_embeddings_seq(self.model.ctx, seq)
        values = (ctypes.c_float * self.dim).from_address(ctypes.addressof(ptr.contents))
        out = (ctypes.c_float * self.dim)(*values)
        if normalize and self.pooling != POOLING["rank"]:
            norm = math.sqrt(math.fsum(v * v for v in out))
            if norm > 0:
                for i in range(self.dim):
                    out[i] /= norm
        return bytes(out)

    def _finish(self, job: _Job) -> None:
        vectors = tuple(job.vectors[i] or b"" for i in job.order)
        self._emit(job.request_id, Embedded(vectors, job.prompt_tokens, job.truncated))

    def _decode_failed(self, rc: int, jobs: dict[int, _Job]) -> None:
        logger.error("llama_decode returned %d (embedding)", rc)
        for job in jobs.values():
            self.queue.remove(job)
            self._emit(job.request_id,
                       Failed(EngineCode.DECODE_FAILED, f"llama_decode returned {rc}", {}))

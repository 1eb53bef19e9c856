"""The continuous-batching decode loop: slots, FIFO admission, chunked prefill, sampling,
speculative decoding.

Every step puts the next token of each decoding choice, the draft tokens of the choices
that speculate this step, and as much pending prompt as fits (n_batch minus those) into
one llama_decode, then samples each output with that choice's sampler chain (verifying
drafts, see speculative.py). All events of a step go out in one message, with at most one
text delta per choice.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from functools import partial

from app.engine.batch import Batch
from app.engine.detok import TextStream
from app.engine.draft import Drafter
from app.engine.intake import Intake
from app.engine.jobs import Choice, Job
from app.engine.logprobs import token_logprob
from app.engine.memory import rss_bytes
from app.engine.model import LlamaModel
from app.engine.prompts import RequestError
from app.engine.sampling import Sampler, choice_seed
from app.engine.schema import (
    Accepted,
    ChoiceEnd,
    EmbedRequest,
    Event,
    Failed,
    GenerateRequest,
    TextDelta,
    WorkerSpec,
    WorkerStats,
)
from app.engine.slots import Slot, common_prefix, pick_slots
from app.engine.spec_loop import Speculator
from app.errors import EngineCode

logger = logging.getLogger(__name__)


Send = Callable[[list[tuple[str, Event]]], None]
# CPU seconds one grammar-constrained token may cost before its request is failed: a grammar
# that ambiguous stalls every stream of the model (the front refuses the known shapes).
# Also what one choice's grammar may spend verifying drafts in one step: past it, the rest of
# its drafts wait for the next step (each draft costs a grammar pass while the others wait).
GRAMMAR_TOKEN_CPU_LIMIT = 0.5


class DecodeLoop:
    """Owns the slots and the jobs of one worker; `step()` runs one decode."""

    def __init__(
        self, model: LlamaModel, spec: WorkerSpec, send: Send, drafter: Drafter | None = None
    ) -> None:
        if spec.n_batch <= spec.parallel:
            raise ValueError("n_batch must be larger than parallel")
        self.model = model
        self.spec = Speculator(spec, model, drafter)
        self.n_ctx = spec.n_ctx
        self.slots = [Slot(seq) for seq in range(spec.parallel)]
        self.batch = Batch(spec.n_batch)
        self.intake = Intake(model, spec)
        self.queue: deque[Job] = deque()
        self.prefilling: list[Job] = []
        self.decoding: list[Job] = []
        self._send = send
        self._events: list[tuple[str, Event]] = []
        self._too_slow: list[Job] = []  # jobs whose grammar costs too much per token
        self._clock = 0

    @property
    def idle(self) -> bool:
        return not (self.queue or self.prefilling or self.decoding)

    def stats(self) -> WorkerStats:
        return WorkerStats(
            slots_total=len(self.slots),
            slots_busy=sum(s.busy for s in self.slots),
            requests_active=len(self.prefilling) + len(self.decoding),
            requests_queued=len(self.queue),
            rss_bytes=rss_bytes(),
        )

    # messages from the front
    def submit(self, req: GenerateRequest | EmbedRequest) -> None:
        """Queue `req`, or answer it with Failed; an error here never reaches other jobs."""
        if isinstance(req, EmbedRequest):
            self._emit(req.request_id, Failed(
                EngineCode.INVALID_REQUEST, "this model generates text; embeddings need a model "
                "served in embedding mode", {"param": "model"}))
            return
        try:
            self.queue.append(self.intake.job(req))
        except RequestError as exc:
            self._emit(req.request_id, Failed(exc.code, exc.message, exc.details))
        except Exception as exc:  # a bug or unexpected input: fail this request only
            logger.exception("request %s failed before it was queued", req.request_id)
            self._emit(req.request_id, Failed(EngineCode.INTERNAL,
                                              f"the request could not be started: {exc!r}"))

    def cancel(self, request_id: str) -> None:
        for job in self.queue:
            if job.request_id == request_id:
                self.queue.remove(job)
                return
        for jobs in (self.prefilling, self.decoding):
            for job in jobs:
                if job.request_id == request_id:
                    jobs.remove(job)
                    self._release(job)
                    return

    def fail_all(self, code: EngineCode, message: str) -> None:
        """End every job with Failed(code) and send the events."""
        for job in [*self.queue, *self.prefilling, *self.decoding]:
            self._release(job)
            self._emit(job.request_id, Failed(code, message, {}))
        self.queue.clear()
        self.prefilling.clear()
        self.decoding.clear()
        self.flush()

    def close(self) -> None:
        """Free the batch, the samplers and the model (the loop is unusable after)."""
        for job in [*self.prefilling, *self.decoding]:
            self._release(job)
        self.queue.clear()
        self.prefilling.clear()
        self.decoding.clear()
        self._events.clear()
        self.batch.free()
        self.model.close()
        self.spec.close()

    def flush(self) -> None:
        if self._events:
            events, self._events = self._events, []
            self._send(events)

    # the step
    def step(self) -> None:
        """Admit, build one batch, decode, sample, emit; flushes the step's events."""
        self._admit()
        batch = self.batch
        batch.clear()
        # in sequence-id order: with one KV stream per sequence llama.cpp puts only runs of
        # consecutive sequence ids (in batch order) into one micro-batch, so 8 sequences
        # added as 5,2,7,0,... would cost 4 graph computations instead of 1
        active = sorted(((job, ch) for job in self.decoding for ch in job.choices
                         if not ch.done), key=lambda jc: jc[1].slot.seq)
        for _, ch in active:
            slot = ch.slot
            ch.out_idx = batch.add(ch.last_token, len(slot.tokens), slot.seq, True)
            slot.tokens.append(ch.last_token)
        # drafts only in a pure decode step: a prompt waiting is what a new request's first
        # token waits on, and the measured step cost that decides whether drafts pay is
        # that of steps without prompt tokens
        if self.spec.cap and not self.prefilling:
            self.spec.add_drafts(batch, [ch for _, ch in active])
        budget = batch.capacity - batch.n
        prefilled: list[Job] = []
        finishing: list[Job] = []
        for job in self.prefilling:
            if budget <= 0:
                break
            prefilled.append(job)
            slot = job.choices[0].slot
            take = min(budget, len(job.prompt) - job.n_past)
            chunk = job.prompt[job.n_past : job.n_past + take]
            last = job.n_past + take == len(job.prompt)
            idx = batch.add_run(chunk, job.n_past, slot.seq, last)
            slot.tokens.extend(chunk)
            job.n_past += take
            budget -= take
            if last:
                job.prefill_out = idx
                finishing.append(job)
        if batch.n == 0:
            self.flush()
            return
        started = time.perf_counter()
        rc = batch.decode(self.model.ctx)
        if rc == 0 and not prefilled:
            self.spec.step_cost.observe(len(active), batch.n, time.perf_counter() - started)
        if rc != 0:
            self._decode_failed(rc, prefilled)
            self.flush()
            return
        for job, ch in active:
            if ch.spec is not None and ch.spec.drafts:
                self._verify(job, ch)
            else:
                self._on_token(job, ch, self._sample(job, ch, ch.out_idx)[0], ch.out_idx)
            self._flush_text(job, ch)
        now = time.perf_counter()
        for job in finishing:
            self.prefilling.remove(job)
            self.decoding.append(job)
            job.t_first = now
            src = job.choices[0].slot
            for ch in job.choices[1:]:
                self.model.seq_cp(src.seq, ch.slot.seq)
                ch.slot.tokens = list(src.tokens)
            for ch in job.choices:
                self._on_token(job, ch, self._sample(job, ch, job.prefill_out)[0],
                               job.prefill_out)
                self._flush_text(job, ch)
        self._fail_too_slow()
        self._finish_done()
        self.flush()

    # internals
    def _verify(self, job: Job, ch: Choice) -> None:
        """Verify the drafts of `ch`; its grammar spends at most about GRAMMAR_TOKEN_CPU_LIMIT
        on them per step (each verified draft costs a grammar pass)."""
        grammar_cpu = 0.0

        def sample(idx: int) -> int:
            nonlocal grammar_cpu
            token, spent = self._sample(job, ch, idx)
            grammar_cpu += spent
            return token

        self.spec.verify(ch, sample, partial(self._on_token, job, ch),
                         more=lambda: grammar_cpu < GRAMMAR_TOKEN_CPU_LIMIT)

    def _sample(self, job: Job, ch: Choice, idx: int) -> tuple[int, float]:
        """Sample choice `ch` (every sample goes through here, verification too); returns the
        token and the CPU seconds its grammar took. A grammar that costs too much CPU for
        one token fails its job at the end of the step."""
        if job.grammar is None:
            return ch.sampler.sample(self.model.ctx, idx), 0.0
        start = time.thread_time()
        token = ch.sampler.sample(self.model.ctx, idx)
        spent = time.thread_time() - start
        if spent > GRAMMAR_TOKEN_CPU_LIMIT and job not in self._too_slow:
            logger.warning("request %s: grammar took %.2f s of CPU for one token",
                           job.request_id, spent)
            self._too_slow.append(job)
        return token, spent

    def _fail_too_slow(self) -> None:
        for job in self._too_slow:
            if job in self.decoding and not job.done:
                self.decoding.remove(job)
                self._release(job)
                self._emit(job.request_id, Failed(
                    EngineCode.GRAMMAR_REJECTED, f"{job.req.json_schema_param}: the JSON schema "
                    f"costs more than {GRAMMAR_TOKEN_CPU_LIMIT} s of CPU per token to enforce; "
                    "simplify it", {"param": job.req.json_schema_param}))
        self._too_slow.clear()

    def _emit(self, request_id: str, event: Event) -> None:
        self._events.append((request_id, event))

    def _admit(self) -> None:
        while self.queue:
            job = self.queue[0]
            picked = pick_slots(self.slots, job.prompt, job.req.n)
            if picked is None:
                return
            self.queue.popleft()
            try:
                self._start(job, picked)
            except Exception as exc:  # e.g. a sampler llama.cpp refused: this job only
                logger.exception("request %s could not start", job.request_id)
                self._release(job)
                for slot in picked:
                    slot.busy = False
                self._emit(job.request_id, Failed(EngineCode.INTERNAL,
                                                  f"the request could not start: {exc!r}"))

    def _start(self, job: Job, slots: list[Slot]) -> None:
        self._clock += 1
        first = slots[0]
        n_past = min(common_prefix(first.tokens, job.prompt), len(job.prompt) - 1)
        job.cached = job.n_past = self._keep_prefix(first, n_past)
        for slot in slots[1:]:
            self._keep_prefix(slot, 0)
        req = job.req
        for i, slot in enumerate(slots):
            slot.busy = True
            slot.last_used = self._clock
            sampler = Sampler(
                req,
                n_vocab=self.model.n_vocab,
                penalty_last_n=self.n_ctx,
                seed=choice_seed(req.seed, i),
                eog_tokens=self.model.eog_tokens,
                vocab=self.model.vocab,
                grammar=job.grammar,
            )
            ch = Choice(i, slot, sampler, TextStream(req.stop), job.limit)
            ch.spec = self.spec.state_for(req, job.prompt)
            job.choices.append(ch)
        job.t_admit = time.perf_counter()
        self._emit(job.request_id,
                   Accepted(len(job.prompt), job.cached, req.thinking_opened))
        if job.limit == 0:
            job.t_first = job.t_admit
            for ch in job.choices:
                self._end(job, ch, "length")
            self._finish(job)
            return
        self.prefilling.append(job)

    def _keep_prefix(self, slot: Slot, n_past: int) -> int:
        """Trim the slot's KV cache to its first `n_past` tokens; returns what was kept."""
        n_past = self.model.keep_prefix(slot.seq, n_past, len(slot.tokens))
        del slot.tokens[n_past:]
        return n_past

    def _on_token(self, job: Job, ch: Choice, token: int, idx: int) -> None:
        if token in self.model.eog_tokens and not job.req.ignore_eos:
            self._end(job, ch, "stop")
            return
        ch.generated += 1
        ch.unsent += 1
        ch.last_token = token
        if ch.spec is not None and ch.spec.index is not None:
            ch.spec.index.append(token)
        if job.req.logprobs is not None:
            model = self.model
            ch.logprobs.append(token_logprob(model.ctx, idx, model.n_vocab, token,
                                             job.req.logprobs, model.piece))
        text = ch.stream.push(self.model.piece(token))
        if text:
            self._emit_text(job, ch, text)
        if ch.stream.stopped:
            self._end(job, ch, "stop")
        elif ch.generated >= ch.limit:
            self._end(job, ch, "length")

    def _end(self, job: Job, ch: Choice, reason: str) -> None:
        tail = ch.stream.flush()
        if ch.stream.stopped:
            reason = "stop"
        if tail:
            self._emit_text(job, ch, tail)
        self._flush_text(job, ch)
        ch.done = True
        self._emit(job.request_id, ChoiceEnd(ch.index, reason, ch.generated, ch.stream.matched))
        self._release_choice(ch)

    def _emit_text(self, job: Job, ch: Choice, text: str) -> None:
        """Queue text of the choice; sent as one TextDelta per step (_flush_text)."""
        ch.text += text
        ch.text_tokens = ch.unsent

    def _flush_text(self, job: Job, ch: Choice) -> None:
        if not ch.text:
            return
        n = ch.text_tokens
        logprobs = tuple(ch.logprobs[:n])
        del ch.logprobs[:n]
        self._emit(job.request_id, TextDelta(ch.index, ch.text, n, logprobs))
        ch.text = ""
        ch.unsent -= n
        ch.text_tokens = 0

    def _finish_done(self) -> None:
        for job in [j for j in self.decoding if j.done]:
            self.decoding.remove(job)
            self._finish(job)

    def _finish(self, job: Job) -> None:
        self._emit(job.request_id, job.finished(time.perf_counter()))

    def _release_choice(self, ch: Choice) -> None:
        if ch.spec is not None:  # (once: a choice is released when it ends or is dropped)
            self.spec.ended(ch.spec)
        ch.done = True
        ch.sampler.free()
        ch.slot.busy = False
        self._clock += 1
        ch.slot.last_used = self._clock

    def _release(self, job: Job) -> None:
        for ch in job.choices:
            if not ch.done:
                self._release_choice(ch)

    def _decode_failed(self, rc: int, prefilled: list[Job]) -> None:
        """llama_decode failed: fail every job in the batch and drop its slots' caches."""
        logger.error("llama_decode returned %d", rc)
        for job in [*self.decoding, *prefilled]:
            for ch in job.choices:
                self.model.seq_rm(ch.slot.seq, -1)
                ch.slot.tokens.clear()
            self._release(job)
            self._emit(job.request_id, Failed(EngineCode.DECODE_FAILED,
                                                     f"llama_decode returned {rc}", {}))
            (self.decoding if job in self.decoding else self.prefilling).remove(job)

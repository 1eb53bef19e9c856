"""The grammar CPU guard covers speculative verification (the decode loop in-process, SmolLM2).

A grammar-constrained choice that speculates samples its grammar once per verified draft. The
guard must see those samples too: one that costs more than GRAMMAR_TOKEN_CPU_LIMIT fails the
request (it used to pass unseen, since verification sampled around the guard), and one step's
verification stops once the choice's grammar has spent the limit, so a costly grammar times
eight drafts cannot stall every other stream of the model for the whole step.

The grammar's cost is injected: the sampler burns CPU (thread time, so the machine's load does
not matter) at draft positions only, the way a grammar can grow costly deep into its output.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.engine import loop as loop_module
from app.engine.loop import DecodeLoop
from app.engine.model import LlamaModel
from app.engine.sampling import Sampler
from app.engine.schema import (
    ChoiceEnd,
    Event,
    Failed,
    Finished,
    GenerateRequest,
    Speculation,
    WorkerSpec,
)
from app.errors import EngineCode

# greedy output `"alpha beta ... epsilon alpha beta ...`: a period of 14 tokens, so n-gram
# lookup proposes (and the target accepts) drafts of up to 8 tokens once it has been seen
SCHEMA = {"type": "string", "pattern": "^(alpha beta gamma delta epsilon ){20}$"}
LIMIT = 0.15  # s, the guard's limit in these tests (GRAMMAR_TOKEN_CPU_LIMIT is 0.5)


@pytest.fixture
def loop(smollm_path: Path) -> Iterator[tuple[DecodeLoop, list[tuple[str, Event]]]]:
    spec = WorkerSpec(model_id="smollm2", model_path=smollm_path, n_ctx=512, parallel=2,
                      n_threads=1)
    events: list[tuple[str, Event]] = []
    decode = DecodeLoop(LlamaModel(spec, lambda _value: None), spec, events.extend)
    yield decode, events
    decode.close()


class Costly:
    """Burns `cost` s of CPU in every grammar sample at a draft position; counts them per step."""

    def __init__(self, loop: DecodeLoop, cost: float) -> None:
        self.loop, self.cost = loop, cost
        self.per_step: list[int] = []

    def at_draft(self, sampler: Sampler, idx: int) -> bool:
        for job in self.loop.decoding:
            for ch in job.choices:
                if ch.sampler is sampler and ch.spec is not None and ch.spec.drafts:
                    return idx >= ch.spec.draft_idx
        return False

    def wrap(self, sample: Any) -> Any:
        def costly(sampler: Sampler, ctx: Any, idx: int) -> int:
            if self.at_draft(sampler, idx):
                self.per_step[-1] += 1
                end = time.thread_time() + self.cost
                while time.thread_time() < end:
                    pass
            return int(sample(sampler, ctx, idx))
        return costly


Loop = tuple[DecodeLoop, list[tuple[str, Event]]]


def generate(loop_events: Loop, monkeypatch: pytest.MonkeyPatch,
             cost: float) -> tuple[list[Event], Costly]:
    loop, events = loop_events
    costly = Costly(loop, cost)
    monkeypatch.setattr(loop_module, "GRAMMAR_TOKEN_CPU_LIMIT", LIMIT)
    monkeypatch.setattr(Sampler, "sample", costly.wrap(Sampler.sample))
    loop.submit(GenerateRequest(
        request_id="r", messages=[{"role": "user", "content": "Answer in JSON."}],
        max_tokens=48, temperature=0.0, json_schema=SCHEMA,
        speculative=Speculation("ngram", 8, budget="always")))  # drafts whatever they cost
    while not loop.idle:
        costly.per_step.append(0)
        loop.step()
    return [event for _, event in events], costly


def test_a_costly_verified_token_fails_its_request(
        loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    events, costly = generate(loop, monkeypatch, cost=LIMIT + 0.05)
    failed = [e for e in events if isinstance(e, Failed)]
    assert failed, f"a {LIMIT + 0.05} s grammar token went unseen: {events[-2:]}"
    assert failed[0].code == EngineCode.GRAMMAR_REJECTED
    assert not any(isinstance(e, Finished) for e in events)
    # failed in the first step that verified a draft, after that one costly sample
    assert sum(costly.per_step) == 1, costly.per_step


def test_verification_stops_at_the_step_budget(
        loop: Loop, monkeypatch: pytest.MonkeyPatch) -> None:
    cost = 0.06  # under the limit: no token fails, but eight of them would cost 0.48 s
    events, costly = generate(loop, monkeypatch, cost)
    assert not any(isinstance(e, Failed) for e in events), events[-2:]
    assert any(isinstance(e, ChoiceEnd) and e.finish_reason == "length" for e in events)
    assert max(costly.per_step) >= 2, f"too little speculation to show: {costly.per_step}"
    # the step's grammar CPU stops at the limit: at most ceil(LIMIT / cost) costly samples
    assert max(costly.per_step) <= 3, costly.per_step

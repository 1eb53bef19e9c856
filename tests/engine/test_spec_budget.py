"""The decode loop drafts only where drafting pays (app/engine/spec_policy.py), with the real
model in this process: given a CPU-like step cost, 8 n-gram streams of an editing task draft
nothing after their first step; given a bandwidth-bound cost, they keep drafting, but not in
a step that carries another request's prompt. The cost curve is fixed here (the loop's own
measurements are the timing source being replaced).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.engine.loop import DecodeLoop
from app.engine.model import LlamaModel
from app.engine.schema import Event, Failed, Finished, Speculation, WorkerSpec
from app.engine.spec_policy import StepCost
from tests.engine.conftest import chat, in_process, smol_spec
from tests.engine.test_speculative_engine import EDIT

STREAMS = 8
TOKENS = 24


class FixedCost(StepCost):
    """A step cost curve (by batch tokens) that the loop's measurements do not move."""

    def __init__(self, seconds: dict[int, float]) -> None:
        super().__init__()
        self.seconds = seconds

    def observe(self, streams: int, n_tokens: int, seconds: float) -> None:
        pass

    def estimate(self, streams: int, n_tokens: int) -> float | None:
        return self.seconds.get(n_tokens)


CPU = {n: 0.0025 + 0.0075 * n for n in range(1, 129)}  # each token costs its share
GPU = {n: 0.050 * (1 + 0.0125 * n) for n in range(1, 129)}  # the weights' read dominates


@pytest.fixture(scope="module")
def model(smollm_path: Path) -> Iterator[tuple[LlamaModel, WorkerSpec]]:
    spec = smol_spec(smollm_path, parallel=STREAMS, speculative=Speculation("ngram", 8))
    with in_process(spec) as llama:
        yield llama, spec


def drafted(model: tuple[LlamaModel, WorkerSpec], cost: dict[int, float]) -> list[Finished]:
    llama, spec = model
    for seq in range(STREAMS):  # a fresh loop: no cache left by the last one
        llama.seq_rm(seq, -1)
    events: list[tuple[str, Event]] = []
    loop = DecodeLoop(llama, spec, events.extend)
    loop.spec.step_cost = FixedCost(cost)
    for i in range(STREAMS):
        loop.submit(chat(f"edit-{i}", EDIT, max_tokens=TOKENS, temperature=0, ignore_eos=True))
    while not loop.idle:
        loop.step()
    loop.batch.free()
    failed = [e for _, e in events if isinstance(e, Failed)]
    assert not failed, failed
    finished = [e for _, e in events if isinstance(e, Finished)]
    assert len(finished) == STREAMS
    assert all(f.completion_tokens == TOKENS for f in finished)
    return finished


def test_cpu_like_cost_switches_speculation_off_at_8_streams(
    model: tuple[LlamaModel, WorkerSpec],
) -> None:
    on_gpu = drafted(model, GPU)
    on_cpu = drafted(model, CPU)
    assert sum(f.spec_proposed for f in on_gpu) > 2 * STREAMS
    assert sum(f.spec_proposed for f in on_cpu) == 0


def test_no_drafts_while_a_prompt_is_being_processed(
    model: tuple[LlamaModel, WorkerSpec],
) -> None:
    """A prompt chunk and drafts would share a step: the prompt (another request's first
    token) goes first, and the drafts wait for the next pure decode step."""
    llama, spec = model
    for seq in range(STREAMS):
        llama.seq_rm(seq, -1)
    events: list[tuple[str, Event]] = []
    loop = DecodeLoop(llama, replace(spec, n_batch=64), events.extend)
    loop.spec.step_cost = FixedCost(GPU)
    loop.submit(chat("edit", EDIT, max_tokens=48, temperature=0, ignore_eos=True))
    steps: list[tuple[bool, int]] = []  # (a prompt in the step, drafts in the step)
    submitted = False
    while not loop.idle:
        if not submitted and loop.decoding:
            # a 300-token prompt: prefilled over several steps of 64 tokens
            loop.submit(chat("long", "word " * 300, max_tokens=4, temperature=0))
            submitted = True
        had_prompt = bool(loop.prefilling or loop.queue)
        decoding = [ch.slot.seq for job in loop.decoding for ch in job.choices]
        loop.step()
        seqs = loop.batch.seq_ids()
        drafts = sum(seqs.count(seq) - 1 for seq in decoding if seq in seqs)
        steps.append((had_prompt, drafts))
    loop.batch.free()
    assert not [e for _, e in events if isinstance(e, Failed)]
    with_prompt = [d for p, d in steps if p]
    assert len(with_prompt) >= 4, steps
    assert sum(with_prompt) == 0, steps
    assert sum(d for p, d in steps if not p) > 0, "drafting pays on this cost: it drafts"

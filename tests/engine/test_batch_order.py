"""The decode tokens of a step go into the batch in sequence-id order, however the requests
arrived: with one KV stream per sequence, llama.cpp makes one micro-batch only of a run of
consecutive sequence ids in batch order, so arrival order used to split a step of 8 streams
into up to 8 graph computations (96-123 tok/s against 141-180 in order, on the 2-vCPU Xeon).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.engine.loop import DecodeLoop
from app.engine.model import LlamaModel
from app.engine.schema import Event, Finished, Speculation, WorkerSpec
from tests.engine.conftest import chat, in_process, smol_spec

STREAMS = 8


@pytest.fixture(scope="module")
def loaded(smollm_path: Path) -> Iterator[tuple[LlamaModel, WorkerSpec]]:
    spec = smol_spec(smollm_path, parallel=STREAMS, speculative=Speculation("off", 8))
    with in_process(spec) as llama:
        yield llama, spec


def test_staggered_arrivals_decode_in_sequence_order(
    loaded: tuple[LlamaModel, WorkerSpec],
) -> None:
    llama, spec = loaded
    events: list[tuple[str, Event]] = []
    loop = DecodeLoop(llama, spec, events.extend)

    def round_of(tag: str, order: list[int]) -> list[list[int]]:
        pending = [chat(f"{tag}-{i}", f"Tell story number {i}.", max_tokens=12, temperature=0,
                        ignore_eos=True) for i in order]
        orders: list[list[int]] = []
        while pending or not loop.idle:
            if pending:
                loop.submit(pending.pop(0))  # one arrival per step
            decoding = sum(not ch.done for job in loop.decoding for ch in job.choices)
            loop.step()
            orders.append(loop.batch.seq_ids()[:decoding])  # the decode tokens come first
        return orders

    round_of("first", list(range(STREAMS)))  # each slot now caches one prompt's prefix
    shuffled = list(range(STREAMS))
    random.Random(3).shuffle(shuffled)
    orders = round_of("again", shuffled)  # each prompt goes back to its slot, out of order
    loop.batch.free()
    finished = [e for _, e in events if isinstance(e, Finished)]
    assert len(finished) == 2 * STREAMS
    full = [ids for ids in orders if len(set(ids)) == STREAMS]
    assert full, "some steps decoded all 8 streams"
    assert all(ids == sorted(ids) for ids in orders)

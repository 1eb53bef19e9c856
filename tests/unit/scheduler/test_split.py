"""The layer split between this box and RPC nodes, and the estimate divided by it."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.catalog.shards import read_model
from app.scheduler.estimate import estimate
from app.scheduler.split import LOCAL, assign, plan, split_memory
from tests.model_headers import write_model


def test_assign_matches_llama_cpp_rule() -> None:
    # 4 layers + output, all offloaded, split 1:1 over two devices: llama.cpp's upper_bound on
    # the cumulative split [0.5, 1.0] of (il - start) / 5 -> 0,0,0 (0.0,0.2,0.4) then 1,1
    assert assign(4, 5, [1.0, 1.0]) == [0, 0, 0, 1, 1]
    # n_gpu_layers 3 of 5: layers 0,1 stay on the CPU (-1)
    assert assign(4, 3, [1.0]) == [-1, -1, 0, 0, 0]
    assert assign(4, 0, [1.0]) == [-1] * 5
    assert assign(4, 5, []) == [-1] * 5


def test_plan_cpu_local_keeps_the_first_layers() -> None:
    p = plan(30, ["a:1", "b:2"], [1, 1, 1], local_offload=False)
    assert p.places == (LOCAL, "a:1", "b:2")
    assert p.layers == (10, 11, 10)  # 31 layers incl. output; the rounding goes to a node
    assert p.n_gpu_layers == 21
    assert p.tensor_split == (1, 1)
    assert [p.place_of_layer(i) for i in (0, 9, 10, 20, 21, 30)] == [
        LOCAL, LOCAL, "a:1", "a:1", "b:2", "b:2"]


def test_plan_with_a_local_gpu_puts_nodes_first_and_keeps_the_output_here() -> None:
    p = plan(30, ["a:1"], [3, 1], local_offload=True)
    assert p.n_gpu_layers == 31
    assert p.tensor_split == (1, 3)
    assert p.nodes_first
    assert p.place_of_layer(0) == "a:1"
    assert p.place_of_layer(30) == LOCAL
    assert sum(p.layers) == 31


@pytest.mark.parametrize("shares", [[1], [1, 1, 1, 1], [0, 0, 0], [-1, 2, 2]])
def test_plan_rejects_bad_shares(shares: list[float]) -> None:
    with pytest.raises(ValueError, match="tensor_split"):
        plan(30, ["a:1", "b:2"], shares, local_offload=False)


def test_split_memory_adds_up_and_follows_the_layers(tmp_path: Path) -> None:
    model = read_model(write_model(tmp_path, "qwen3-14b"))
    est = estimate(model, n_ctx=4096, parallel=2)
    n_layer = model.info.block_count or 0
    p = plan(n_layer, ["a:1", "b:2"], [2, 1, 1], local_offload=False)
    need = split_memory(model, est, p)
    # every byte of the estimate lands somewhere; each node also holds a compute buffer
    assert sum(need.values()) == est.total + 2 * est.compute
    # weights follow the layers: local holds half the layers, plus embeddings and overhead
    assert need[LOCAL] > need["a:1"] > 0
    assert abs(need["a:1"] - need["b:2"]) < est.total * 0.05
    everything_local = split_memory(model, est, plan(n_layer, [], [1], local_offload=False))
    assert everything_local == {LOCAL: est.total}

"""The per-node ledger: models split across this box and RPC nodes (issue 15)."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.scheduler import events as ev
from app.scheduler.core import Core
from tests.unit.scheduler.world import Request, World

GIB = 1 << 30
A, B = "10.0.0.2:50052", "10.0.0.3:50052"


def core() -> Core:
    specs = [
        ev.ModelSpec("local", 6 * GIB, 1, ttl=100),
        # 14 GiB in all: fits only with the nodes counted
        ev.ModelSpec("split", 6 * GIB, 1, ttl=100, nodes=((A, 4 * GIB), (B, 4 * GIB))),
        ev.ModelSpec("other", 2 * GIB, 1, ttl=100, nodes=((A, 1 * GIB),)),
        ev.ModelSpec("huge", 2 * GIB, 1, nodes=((A, 3 * GIB), (B, 9 * GIB))),
    ]
    return Core(specs, ev.Limits(budget=10 * GIB, node_budgets=((A, 5 * GIB), (B, 8 * GIB))))


def test_three_budgets_and_a_split_reservation_on_each() -> None:
    c = core()
    assert c.budgets == {ev.LOCAL: 10 * GIB, A: 5 * GIB, B: 8 * GIB}
    assert c.handle(ev.Arrive(1, "split", 1, 0.0)) == [ev.StartLoad("split", 1)]
    assert (c.reserved(), c.reserved(A), c.reserved(B)) == (6 * GIB, 4 * GIB, 4 * GIB)
    assert c.model("split").nodes == ((A, 4 * GIB), (B, 4 * GIB))  # type: ignore[union-attr]
    c.handle(ev.LoadDone("split", 1, 5 * GIB, 1.0))
    c.handle(ev.RequestEnded(1, True, 2.0))
    c.handle(ev.UnloadRequest(2, "split", 3.0))
    c.handle(ev.WorkerStopped("split", 1, 4.0))
    assert (c.reserved(), c.reserved(A), c.reserved(B)) == (0, 0, 0)


def test_never_fits_on_one_node_is_refused_with_the_sizes_per_node() -> None:
    c = core()
    (reject,) = c.handle(ev.Arrive(1, "huge", 1, 0.0))
    assert isinstance(reject, ev.Reject)
    assert reject.code == "insufficient_memory"
    assert B in reject.message
    assert A not in reject.message.split("(needs per node")[0]  # A fits: not a reason
    assert "needs per node: local 2.00 GiB of 10.00, " in reject.message
    assert f"{B} 9.00 GiB of 8.00" in reject.message


def test_local_memory_is_shared_and_evicted_as_before() -> None:
    c = core()
    assert c.handle(ev.Arrive(1, "local", 1, 0.0)) == [ev.StartLoad("local", 1)]
    c.handle(ev.LoadDone("local", 1, 0, 1.0))
    c.handle(ev.RequestEnded(1, True, 2.0))
    # 6 + 6 GiB > 10 GiB here: the idle local-only model makes room for the split one
    assert c.handle(ev.Arrive(2, "split", 1, 3.0)) == [ev.StopWorker("local", 1, "memory")]
    assert c.handle(ev.WorkerStopped("local", 1, 4.0)) == [ev.StartLoad("split", 1)]


def test_a_node_serves_one_model_at_a_time() -> None:
    c = core()
    c.handle(ev.Arrive(1, "other", 1, 0.0))
    c.handle(ev.LoadDone("other", 1, 0, 1.0))
    # memory everywhere would hold both (A: 1 + 4 <= 5 GiB), but llama.cpp's RPC server
    # serves one client at a time: the model holding A is drained, then stopped
    assert c.handle(ev.Arrive(2, "split", 1, 2.0)) == [ev.Drain("other", "memory")]
    assert c.handle(ev.RequestEnded(1, True, 3.0)) == [ev.StopWorker("other", 1, "memory")]
    assert c.handle(ev.WorkerStopped("other", 1, 4.0)) == [ev.StartLoad("split", 1)]


NODE_EXAMPLES = int(os.environ.get("HALO_PROPERTY_EXAMPLES", "2000")) // 5


@settings(max_examples=NODE_EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(
    models=st.lists(
        st.tuples(
            st.integers(1, 9),  # GiB on this box
            st.lists(st.integers(0, 9), min_size=2, max_size=2),  # GiB on A, B (0: unused)
            st.floats(0.5, 20.0),  # load time
            st.lists(st.booleans(), max_size=3),  # which load attempts fail
        ),
        min_size=2, max_size=5),
    requests=st.lists(
        st.tuples(st.integers(0, 4), st.floats(0.0, 10.0), st.floats(0.1, 30.0),
                  st.sampled_from(["lease"] * 8 + ["load", "unload"])),
        min_size=1, max_size=20),
    crashes=st.lists(st.tuples(st.integers(0, 4), st.floats(0.0, 100.0)), max_size=2),
)
def test_random_sequences_keep_every_node_within_budget_and_one_model_per_node(
    models: list[tuple[int, list[int], float, list[bool]]],
    requests: list[tuple[int, float, float, str]],
    crashes: list[tuple[int, float]],
) -> None:
    """The world (world.py) checks after every event: Σ reserved <= budget on this box and on
    each node, and no node held by two models; every request answered once."""
    specs = {}
    for i, (local, (a, b), _, _) in enumerate(models):
        nodes = tuple((n, gib * GIB) for n, gib in ((A, a), (B, b)) if gib)
        specs[f"m{i}"] = ev.ModelSpec(f"m{i}", local * GIB, 1, ttl=30.0, nodes=nodes)
    limits = ev.Limits(budget=10 * GIB, node_budgets=((A, 5 * GIB), (B, 8 * GIB)),
                       max_waiting=1000, slot_wait=1e9, crash_limit=2, backoff=5.0,
                       backoff_cap=20.0)
    world = World(specs, limits, load_time={f"m{i}": m[2] for i, m in enumerate(models)},
                  fails={f"m{i}": m[3] for i, m in enumerate(models)})
    names = list(specs)
    t = 0.0
    for rid, (which, gap, duration, kind) in enumerate(requests):
        t += gap
        world.add_request(Request(rid, names[which % len(names)], t, duration, 1, None, kind))
    for which, when in crashes:
        world.crash(names[which % len(names)], when)
    world.run()
    if not crashes and not any(any(m[3]) for m in models):
        for rid, (answer,) in world.answers.items():
            r = world.requests[rid]
            spec = specs[r.model]
            too_big = spec.need > limits.budget or any(
                need > dict(limits.node_budgets)[n] for n, need in spec.nodes)
            if r.kind == "unload":
                assert answer == "done"
            elif too_big:
                assert answer == "reject:insufficient_memory"
            else:
                assert answer in ("grant", "done")

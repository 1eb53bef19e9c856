"""Property test: random request sequences on the realistic 128 GB table never break the ledger,
never stop a busy, loading or pinned model, and always end (served or refused with a reason)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.catalog.gguf import ModelFile
from app.scheduler.estimate import GIB, estimate
from tests.unit.scheduler.sim import Sim, SimModel, SimRequest

BUDGET = 110 * GIB  # 128 GB unified memory minus the OS and the front
# (name, header model, n_ctx per slot, parallel)
TABLE = [
    ("qwen3-14b@32k", "qwen3-14b", 32768, 1),
    ("qwen3-14b@8kx4", "qwen3-14b", 8192, 4),
    ("qwen3-32b@32k", "qwen3-32b", 32768, 1),
    ("llama-70b@32k", "llama-3.3-70b", 32768, 1),
    ("llama-70b@128k", "llama-3.3-70b", 131072, 1),
    ("qwen3-next@256k", "qwen3-next-80b-a3b", 262144, 1),
    ("gpt-oss@128k", "gpt-oss-120b", 131072, 1),
    ("llama-70b@128kx2", "llama-3.3-70b", 131072, 2),  # > budget: always refused
]


@pytest.fixture(scope="module")
def needs(header_models: dict[str, ModelFile]) -> dict[str, int]:
    """Bytes each table entry needs, from the estimate of its realistic header."""
    out = {}
    for name, model, n_ctx, parallel in TABLE:
        est = estimate(header_models[model], n_ctx=n_ctx, parallel=parallel, flash_attn=True)
        out[name] = est.total
    return out


def test_table_is_realistic(needs: dict[str, int]) -> None:
    assert 10 * GIB < needs["qwen3-14b@32k"] < 16 * GIB
    assert 75 * GIB < needs["llama-70b@128k"] < BUDGET < needs["llama-70b@128kx2"]
    assert needs["qwen3-14b@32k"] + needs["qwen3-next@256k"] < BUDGET  # notes §8: co-resident
    assert needs["qwen3-next@256k"] + needs["gpt-oss@128k"] > BUDGET  # must evict


models_st = st.lists(
    st.tuples(
        st.sampled_from([t[0] for t in TABLE]),
        st.booleans() | st.just(False),  # pinned (biased to False)
        st.floats(0.5, 30.0),  # load time
        st.booleans() | st.just(False) | st.just(False),  # first load fails
        st.integers(1, 3),  # slots
    ),
    min_size=2,
    max_size=6,
    unique_by=lambda m: m[0],
)
requests_st = st.lists(
    st.tuples(st.integers(0, 5), st.floats(0.0, 20.0), st.floats(0.1, 60.0)),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=1500,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(models=models_st, requests=requests_st, swap_after=st.sampled_from([0.0, 5.0, 10.0]))
def test_random_sequences_keep_the_invariants(
    needs: dict[str, int],
    models: list[tuple[str, bool, float, bool, int]],
    requests: list[tuple[int, float, float]],
    swap_after: float,
) -> None:
    sim_models = {
        name: SimModel(name, needs[name], pinned, load, fail, slots)
        for name, pinned, load, fail, slots in models
    }
    names = list(sim_models)
    reqs, t = [], 0.0
    for i, (which, gap, duration) in enumerate(requests):
        t += gap
        reqs.append(SimRequest(i, names[which % len(names)], t, duration))
    sim = Sim(sim_models, reqs, BUDGET, swap_after=swap_after)
    sim.run()  # asserts the ledger, eviction/drain rules and the absence of deadlock
    for r in reqs:
        assert r.outcome == "served" or (r.outcome == "refused" and "GiB" in r.reason)


def test_ping_pong_requests_are_batched(needs: dict[str, int]) -> None:
    """Alternating requests for two models that cannot co-reside: with the guard, queued requests
    for the running model are served together, so there are far fewer swaps than requests."""
    a, b = "llama-70b@128k", "gpt-oss@128k"
    assert needs[a] + needs[b] > BUDGET
    models = {n: SimModel(n, needs[n], False, 5.0, slots=1) for n in (a, b)}
    reqs = [SimRequest(i, (a, b)[i % 2], i * 0.5, 2.0) for i in range(40)]
    sim = Sim(models, reqs, BUDGET, swap_after=10.0)
    sim.run()
    loads = sum(m.loads for m in models.values())
    assert all(r.outcome == "served" for r in reqs)
    assert loads <= 10, f"{loads} loads for 40 alternating requests"
    unguarded = {n: SimModel(n, needs[n], False, 5.0, slots=1) for n in (a, b)}
    again = [SimRequest(i, (a, b)[i % 2], i * 0.5, 2.0) for i in range(40)]
    Sim(unguarded, again, BUDGET, swap_after=0.0).run()
    assert sum(m.loads for m in unguarded.values()) > loads

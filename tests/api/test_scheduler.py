"""The scheduler carrying out policy decisions, with fake engines and the real model headers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.catalog.catalog import Catalog, Defaults, ModelEntry, scan
from app.engine.client import WorkerSpec
from app.errors import InsufficientMemory, ModelBusy, ModelLoadFailed, QueueFull
from app.metrics import Metrics
from app.scheduler.engine import EngineFactory
from app.scheduler.estimate import MemoryEstimate, estimate
from app.scheduler.scheduler import Limits, Scheduler
from tests.api.fake_engine import FakeEngine, FakeFactory

pytestmark = pytest.mark.anyio

A, B = "SmolLM2-135M-Instruct.Q4_1", "gemma3-270m"


@pytest.fixture
def catalog(models_dir: Path) -> Catalog:
    return scan(models_dir, models_dir / "models.toml", Defaults(2048, 2, 300))


def spec(entry: ModelEntry) -> WorkerSpec:
    return WorkerSpec(entry.id, entry.path, entry.n_ctx, entry.parallel)


def est(entry: ModelEntry) -> MemoryEstimate:
    return estimate(entry.file, n_ctx=entry.n_ctx, parallel=entry.parallel,
                    n_batch=entry.n_batch, n_ubatch=entry.n_batch)


def need(catalog: Catalog, model: str) -> int:
    return est(catalog.entries[model]).total


def make(catalog: Catalog, factory: EngineFactory, budget: int, **limits: float) -> Scheduler:
    return Scheduler(catalog, factory, spec, est, Limits(budget=budget, **limits),  # type: ignore[arg-type]
                     Metrics())


@pytest.fixture
async def one_slot_budget(catalog: Catalog) -> AsyncIterator[tuple[Scheduler, FakeFactory]]:
    factory = FakeFactory()
    sched = make(catalog, factory, max(need(catalog, A), need(catalog, B)) + (64 << 20),
                 tick=0.05)
    sched.start()
    yield sched, factory
    await sched.close()


async def test_idle_model_is_evicted_for_another(
    one_slot_budget: tuple[Scheduler, FakeFactory],
) -> None:
    sched, factory = one_slot_budget
    async with sched.lease(A):
        pass
    async with sched.lease(B) as engine:
        assert engine.spec.model_id == B
        assert sched.state(A).status == "unloaded"
        assert not factory.started[0].alive  # A's worker was stopped
    assert sched.reserved <= sched.limits.budget


async def test_busy_model_drains_before_swap(
    one_slot_budget: tuple[Scheduler, FakeFactory],
) -> None:
    sched, _ = one_slot_budget
    got_b = asyncio.Event()

    async def want_b() -> None:
        async with sched.lease(B):
            got_b.set()

    async with sched.lease(A):
        task = asyncio.create_task(want_b())
        await asyncio.sleep(0.3)
        assert not got_b.is_set()
        assert sched.state(A).status == "draining"
        assert sched.reserved <= sched.limits.budget
    await asyncio.wait_for(task, 5)
    assert sched.state(A).status == "unloaded"


async def test_concurrent_requests_trigger_one_load(catalog: Catalog) -> None:
    factory = FakeFactory()
    sched = make(catalog, factory, 8 << 30)

    async def one() -> None:
        async with sched.lease(A):
            await asyncio.sleep(0.01)

    await asyncio.gather(*(one() for _ in range(6)))
    assert len(factory.started) == 1
    await sched.close()


async def test_both_fit_no_swaps(catalog: Catalog) -> None:
    factory = FakeFactory()
    sched = make(catalog, factory, need(catalog, A) + need(catalog, B) + (64 << 20))
    for _ in range(5):
        for model in (A, B):
            async with sched.lease(model):
                pass
    assert len(factory.started) == 2
    assert {s.status for s in sched.states()} == {"loaded"}
    await sched.close()


async def test_too_big_is_refused_at_once_with_sizes(catalog: Catalog) -> None:
    sched = make(catalog, FakeFactory(), 256 << 20)
    with pytest.raises(InsufficientMemory, match=r"needs .*GiB.*budget .*GiB"):
        async with sched.lease(A):
            pass
    await sched.close()


async def test_failed_load_is_marked_and_retried(catalog: Catalog) -> None:
    calls = 0

    async def flaky(spec: WorkerSpec) -> FakeEngine:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bad file")
        return FakeEngine(spec)

    sched = make(catalog, flaky, 8 << 30)
    with pytest.raises(ModelLoadFailed, match="bad file"):
        async with sched.lease(A):
            pass
    assert sched.state(A).status == "failed"
    assert sched.state(A).failure == "bad file"
    assert sched.reserved == 0
    async with sched.lease(A):
        assert sched.state(A).status == "loaded"
    await sched.close()


async def test_idle_ttl_unloads(catalog: Catalog, models_dir: Path) -> None:
    short = scan(models_dir, models_dir / "models.toml", Defaults(2048, 2, 0.2))
    factory = FakeFactory()
    sched = make(short, factory, 8 << 30, tick=0.05)
    sched.start()
    async with sched.lease(A):
        pass
    await asyncio.sleep(0.6)
    assert sched.state(A).status == "unloaded"
    await sched.close()


async def test_slots_full_waits_then_429(catalog: Catalog) -> None:
    sched = make(catalog, FakeFactory(), 8 << 30, slot_wait=0.2)
    parallel = catalog.entries[A].parallel
    async with contextlib_stack(sched, A, parallel):
        with pytest.raises(ModelBusy) as info:
            async with sched.lease(A):
                pass
        assert info.value.retry_after > 0
    await sched.close()


async def test_queue_bound_gives_503(catalog: Catalog) -> None:
    sched = make(catalog, FakeFactory(), 8 << 30, max_waiting=1, slot_wait=5)
    parallel = catalog.entries[A].parallel
    async with contextlib_stack(sched, A, parallel):
        waiter = asyncio.create_task(sched.lease(A).__aenter__())
        await asyncio.sleep(0.05)
        with pytest.raises(QueueFull):
            async with sched.lease(A):
                pass
        waiter.cancel()
    await sched.close()


class contextlib_stack:
    """Hold ``n`` leases on a model."""

    def __init__(self, sched: Scheduler, model: str, n: int) -> None:
        self._leases = [sched.lease(model) for _ in range(n)]

    async def __aenter__(self) -> None:
        for lease in self._leases:
            await lease.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        for lease in self._leases:
            await lease.__aexit__(None, None, None)

"""The scheduler driver with fake engines and a fake clock: no sleeps, every wait is an event."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from app.catalog.catalog import Catalog, Defaults, ModelEntry, scan
from app.engine.client import EngineLoadError, WorkerSpec
from app.errors import (
    InsufficientMemory,
    InvalidRequest,
    ModelBackingOff,
    ModelBusy,
    ModelLoadFailed,
    ModelNotFound,
    QueueFull,
)
from app.metrics import Metrics
from app.scheduler.driver import Limits, Scheduler
from app.scheduler.engine import Engine
from app.scheduler.estimate import MemoryEstimate, estimate
from tests.api.fake_engine import FakeEngine
from tests.model_headers import write_model
from tests.unit.scheduler.fake_clock import FakeClock, settle

pytestmark = pytest.mark.anyio

A, B = "qwen3-14b", "qwen3-32b"  # realistic headers (tests/model_headers.py), no weights


class Factory:
    """Fake workers; with `hold`, each load waits until the test opens it."""

    def __init__(self, *, hold: bool = False) -> None:
        self.hold = hold
        self.fail: str | None = None
        self.calls: list[str] = []
        self.started: list[FakeEngine] = []
        self.gates: list[asyncio.Future[None]] = []

    async def __call__(self, spec: WorkerSpec) -> FakeEngine:
        self.calls.append(spec.model_id)
        if self.hold:
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.gates.append(gate)
            await gate
        if self.fail is not None:
            raise EngineLoadError(self.fail)
        engine = FakeEngine(spec)
        self.started.append(engine)
        return engine

    async def open(self) -> None:
        for gate in self.gates:
            if not gate.done():
                gate.set_result(None)
        await settle()


def spec(entry: ModelEntry) -> WorkerSpec:
    return WorkerSpec(entry.id, entry.path, entry.n_ctx, entry.parallel)


def est(entry: ModelEntry) -> MemoryEstimate:
    return estimate(entry.file, n_ctx=entry.n_ctx, parallel=entry.parallel,
                    n_batch=entry.n_batch, n_ubatch=entry.n_batch)


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp_path = tmp_path_factory.mktemp("headers")
    for name in ("qwen3-14b", "qwen3-32b"):
        write_model(tmp_path, name)
    (tmp_path / "models.toml").write_text(
        '[models.qwen3-14b]\npath = "qwen3-14b-Q4_K_M.gguf"\n'
        '[models.qwen3-32b]\npath = "qwen3-32b-Q4_K_M.gguf"\n')
    return tmp_path


@pytest.fixture(scope="module")
def catalog(models_dir: Path) -> Catalog:
    return scan(models_dir, models_dir / "models.toml", Defaults(2048, 2, 300))


def need(catalog: Catalog, model: str) -> int:
    return est(catalog.entries[model]).total


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def make(catalog: Catalog, factory: Factory, clock: FakeClock, budget: int = 64 << 30,
         **limits: float) -> Scheduler:
    sched = Scheduler(catalog, factory, spec, est, Limits(budget=budget, **limits),  # type: ignore[arg-type]
                      Metrics(), clock)
    sched.start()
    return sched


class Held:
    """A lease held open by a task until `release`."""

    def __init__(self, sched: Scheduler, model: str, sequences: int = 1) -> None:
        self.engine: Engine | None = None
        self.error: BaseException | None = None
        self._release = asyncio.Event()
        self.task = asyncio.create_task(self._run(sched, model, sequences))

    async def _run(self, sched: Scheduler, model: str, sequences: int) -> None:
        try:
            async with sched.lease(model, sequences) as engine:
                self.engine = engine
                await self._release.wait()
        except Exception as exc:
            self.error = exc

    async def release(self) -> None:
        self._release.set()
        await settle()


@contextlib.asynccontextmanager
async def running(sched: Scheduler) -> AsyncIterator[Scheduler]:
    try:
        yield sched
    finally:
        await sched.close()


async def test_concurrent_requests_join_one_load(catalog: Catalog, clock: FakeClock) -> None:
    factory = Factory(hold=True)
    async with running(make(catalog, factory, clock)) as sched:
        held = [Held(sched, A) for _ in range(2)]
        await settle()
        assert factory.calls == [A]
        assert sched.state(A).status == "loading"
        assert all(h.engine is None for h in held)
        await factory.open()
        assert all(h.engine is factory.started[0] for h in held)
        for h in held:
            await h.release()
        assert sched.state(A).active == 0


async def test_sequences_count_and_slot_wait_ends_in_429(catalog: Catalog,
                                                         clock: FakeClock) -> None:
    async with running(make(catalog, Factory(), clock, slot_wait=30)) as sched:
        both = Held(sched, A, sequences=2)  # n=2 takes both slots of a parallel=2 model
        await settle()
        assert sched.state(A).active == 2
        waiting = Held(sched, A)
        await settle()
        assert waiting.engine is None
        await clock.advance(29)
        assert waiting.engine is None
        assert waiting.error is None
        await clock.advance(1)
        assert isinstance(waiting.error, ModelBusy)
        assert waiting.error.retry_after > 0
        with pytest.raises(InvalidRequest, match="n must be between 1 and 2"):
            async with sched.lease(A, 3):
                pass
        await both.release()


async def test_load_of_a_busy_model_returns_at_once(catalog: Catalog, clock: FakeClock) -> None:
    async with running(make(catalog, Factory(), clock)) as sched:
        both = Held(sched, A, sequences=2)
        await settle()
        load = asyncio.create_task(sched.load(A))
        await settle()
        assert load.done()
        await load
        await both.release()


async def test_idle_model_is_evicted_for_another(catalog: Catalog, clock: FakeClock) -> None:
    factory = Factory()
    budget = max(need(catalog, A), need(catalog, B)) + (64 << 20)
    async with running(make(catalog, factory, clock, budget)) as sched:
        async with sched.lease(A):
            pass
        async with sched.lease(B) as engine:
            assert engine.spec.model_id == B
            assert sched.state(A).status == "unloaded"
            assert not factory.started[0].alive  # A's worker was stopped first
        assert sched.reserved <= sched.limits.budget


async def test_busy_model_drains_before_swap(catalog: Catalog, clock: FakeClock) -> None:
    budget = max(need(catalog, A), need(catalog, B)) + (64 << 20)
    async with running(make(catalog, Factory(), clock, budget)) as sched:
        a = Held(sched, A)
        await settle()
        b = Held(sched, B)
        await settle()
        assert b.engine is None
        assert sched.state(A).status == "draining"
        assert sched.reserved <= budget
        await a.release()
        assert b.engine is not None
        assert sched.state(A).status == "unloaded"
        await b.release()


async def test_idle_ttl_unloads_on_the_fake_clock(models_dir: Path, clock: FakeClock) -> None:
    short = scan(models_dir, models_dir / "models.toml", Defaults(2048, 2, 60))
    async with running(make(short, Factory(), clock)) as sched:
        async with sched.lease(A):
            pass
        assert sched.state(A).expires_in == 60
        await clock.advance(59.5)
        assert sched.state(A).status == "loaded"
        await clock.advance(0.5)
        assert sched.state(A).status == "unloaded"
        assert clock.pending() == []


async def test_too_big_is_refused_at_once(catalog: Catalog, clock: FakeClock) -> None:
    async with running(make(catalog, Factory(), clock, 4 << 30)) as sched:
        with pytest.raises(InsufficientMemory, match=r"needs .*GiB.*budget .*GiB"):
            async with sched.lease(A):
                pass
        with pytest.raises(ModelNotFound):
            async with sched.lease("nope"):
                pass


async def test_queue_bound(catalog: Catalog, clock: FakeClock) -> None:
    factory = Factory(hold=True)
    async with running(make(catalog, factory, clock, max_waiting=1)) as sched:
        first = Held(sched, A)
        await settle()
        with pytest.raises(QueueFull):
            async with sched.lease(A):
                pass
        await factory.open()
        await first.release()


async def test_crash_loop_backs_off(catalog: Catalog, clock: FakeClock) -> None:
    factory = Factory()
    factory.fail = "the worker died during warm-up (SIGILL)"
    async with running(make(catalog, factory, clock, crash_limit=3, backoff=5)) as sched:
        for _ in range(3):
            with pytest.raises(ModelLoadFailed, match="SIGILL"):
                async with sched.lease(A):
                    pass
        assert len(factory.calls) == 3
        for _ in range(10):  # no restart on every request: 503 with the reason
            with pytest.raises(ModelBackingOff, match="SIGILL") as info:
                async with sched.lease(A):
                    pass
        assert len(factory.calls) == 3
        assert info.value.retry_after == pytest.approx(5)
        state = sched.state(A)
        assert (state.status, state.retry_in) == ("failed", 5)
        await clock.advance(5)  # the back-off expired: one more try, then 10 s
        with pytest.raises(ModelLoadFailed):
            async with sched.lease(A):
                pass
        assert len(factory.calls) == 4
        assert sched.state(A).retry_in == 10
        factory.fail = None  # fixed: an explicit load retries at once
        await sched.load(A)
        assert len(factory.calls) == 5
        assert sched.state(A).status == "loaded"


async def test_worker_death_is_seen_and_next_request_reloads(catalog: Catalog,
                                                             clock: FakeClock) -> None:
    factory = Factory()
    async with running(make(catalog, factory, clock)) as sched:
        async with sched.lease(A):
            pass
        factory.started[0].crash("worker for x exited with code -9")
        await settle()
        state = sched.state(A)
        assert (state.status, state.failure, state.reserved) == (
            "failed", "worker for x exited with code -9", 0)
        async with sched.lease(A) as engine:
            assert engine is factory.started[1]
        assert sched.state(A).state.failures == 0  # a request ran to its end


async def test_explicit_unload_waits_for_the_running_request(catalog: Catalog,
                                                             clock: FakeClock) -> None:
    async with running(make(catalog, Factory(), clock)) as sched:
        held = Held(sched, A)
        await settle()
        unload = asyncio.create_task(sched.unload(A))
        await settle()
        assert not unload.done()
        assert sched.state(A).status == "draining"
        await held.release()
        assert await unload is True
        assert await sched.unload(A) is False


async def test_sync_catalog_adds_and_removes(catalog: Catalog, models_dir: Path,
                                             clock: FakeClock) -> None:
    factory = Factory()
    only_a = Catalog({A: catalog.entries[A]}, ())
    async with running(make(only_a, factory, clock)) as sched:
        assert [s.entry.id for s in sched.states()] == [A]
        assert await sched.sync_catalog(catalog) == ([B], [])
        assert [s.entry.id for s in sched.states()] == sorted([A, B])
        held = Held(sched, A)
        await settle()
        sync = asyncio.create_task(sched.sync_catalog(Catalog({B: catalog.entries[B]}, ())))
        await settle()
        assert [s.entry.id for s in sched.states()] == [B]
        assert factory.started[0].alive  # drained: its request still runs
        assert not sync.done()  # returns once the removed model's worker is gone
        await held.release()
        assert await sync == ([], [A])
        assert not factory.started[0].alive
        assert sched.reserved == 0
        with pytest.raises(ModelNotFound):
            async with sched.lease(A):
                pass


async def test_cancelled_waiter_frees_its_place(catalog: Catalog, clock: FakeClock) -> None:
    factory = Factory(hold=True)
    async with running(make(catalog, factory, clock)) as sched:
        held = Held(sched, A)
        await settle()
        held.task.cancel()
        await settle()
        await factory.open()
        assert sched.state(A).active == 0
        assert sched.state(A).state.waiting == 0


async def test_close_stops_workers(catalog: Catalog, clock: FakeClock) -> None:
    factory = Factory()
    sched = make(catalog, factory, clock)
    async with sched.lease(A):
        pass
    await sched.close()
    assert not factory.started[0].alive


async def test_worker_that_dies_on_every_request_backs_off(catalog: Catalog,
                                                           clock: FakeClock) -> None:
    """Loads succeed, but each worker dies under its first request: a crash loop too."""
    factory = Factory()
    async with running(make(catalog, factory, clock, crash_limit=3, backoff=5)) as sched:
        for _ in range(3):
            async with sched.lease(A) as engine:
                assert isinstance(engine, FakeEngine)
                engine.crash("worker exited by SIGSEGV")
            await settle()
        assert len(factory.calls) == 3
        state = sched.state(A)
        assert (state.status, state.state.failures, state.retry_in) == ("failed", 3, 5)
        with pytest.raises(ModelBackingOff, match="SIGSEGV"):
            async with sched.lease(A):
                pass
        assert len(factory.calls) == 3

"""Scheduler.sync_catalog: the scheduler adopts a rescanned catalog (fake engines)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from app.catalog.catalog import Catalog, Defaults, ModelEntry, scan
from app.engine.client import WorkerSpec
from app.errors import ModelNotFound
from app.metrics import Metrics
from app.scheduler.driver import Limits, Scheduler
from app.scheduler.estimate import MemoryEstimate, estimate
from tests.api.fake_engine import FakeEngine, FakeFactory
from tests.hub.tiny import tiny_gguf

pytestmark = pytest.mark.anyio


def spec(entry: ModelEntry) -> WorkerSpec:
    return WorkerSpec(entry.id, entry.path, entry.n_ctx, entry.parallel)


def est(entry: ModelEntry) -> MemoryEstimate:
    return estimate(entry.file, n_ctx=entry.n_ctx, parallel=entry.parallel)


def catalog_of(root: Path) -> Catalog:
    return scan(root, root / "models.toml", Defaults(1024, 1, 300))


async def test_added_removed_and_changed_models(tmp_path: Path) -> None:
    tiny_gguf(tmp_path / "a.gguf")
    tiny_gguf(tmp_path / "b.gguf")
    factory = FakeFactory()
    sched = Scheduler(catalog_of(tmp_path), factory, spec, est, Limits(budget=8 << 30),
                      Metrics())
    sched.start()
    try:
        async with sched.lease("a"):
            pass
        async with sched.lease("b"):
            pass
        engine_a, engine_b = factory.started
        # b vanishes (unloaded first), c appears; a is untouched
        (tmp_path / "b.gguf").unlink()
        tiny_gguf(tmp_path / "c.gguf")
        added, removed = await sched.sync_catalog(catalog_of(tmp_path))
        assert (added, removed) == (["c"], ["b"])
        assert not engine_b.alive
        assert engine_a.alive
        assert [s.entry.id for s in sched.states()] == ["a", "c"]
        with pytest.raises(ModelNotFound):
            sched.state("b")
        # only a record changed (where it came from): the loaded worker stays
        current = catalog_of(tmp_path)
        relabeled = Catalog({**current.entries, "a": dataclasses.replace(
            current.entries["a"], source="org/a:Q4_K_M")}, ())
        assert await sched.sync_catalog(relabeled) == ([], [])
        assert engine_a.alive
        assert sched.state("a").entry.source == "org/a:Q4_K_M"
        # its served settings changed: reloaded on the next request
        (tmp_path / "models.toml").write_text('[models.a]\npath = "a.gguf"\nn_ctx = 512\n')
        assert await sched.sync_catalog(catalog_of(tmp_path)) == (["a"], ["a"])
        assert not engine_a.alive
        async with sched.lease("a") as engine:
            assert engine.spec.n_ctx == 512
    finally:
        await sched.close()


async def test_waiting_requests_of_a_removed_model_get_not_found(tmp_path: Path) -> None:
    tiny_gguf(tmp_path / "a.gguf")
    fake = FakeFactory()

    async def slow_load(worker: WorkerSpec) -> FakeEngine:  # a request waits on this load
        await asyncio.sleep(0.5)
        return await fake(worker)

    factory = slow_load
    sched = Scheduler(catalog_of(tmp_path), factory, spec, est, Limits(budget=8 << 30),
                      Metrics())
    sched.start()
    try:
        async def use() -> None:
            async with sched.lease("a"):
                pass

        waiting = asyncio.create_task(use())
        await asyncio.sleep(0.1)
        (tmp_path / "a.gguf").unlink()
        await sched.sync_catalog(catalog_of(tmp_path))
        with pytest.raises(ModelNotFound):
            await waiting
        assert sched.states() == []
    finally:
        await sched.close()

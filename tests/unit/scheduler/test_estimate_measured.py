"""The estimate against what real workers measure (llama.cpp's buffer sizes) on the test models.

Compared: weights + KV (+ recurrent) + compute vs the worker's model + KV + compute buffers.
The overhead is left out of that comparison because the worker measures no such buffer; it is
checked instead against the process RSS (estimate with overhead >= RSS).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from app.catalog.shards import read_model
from app.engine.client import EngineClient, LoadReport, WorkerSpec
from app.scheduler.estimate import MIB, estimate

# (model, n_ctx per slot, parallel, n_batch (= n_ubatch in the worker), flash_attn, K, V)
SETTINGS = [
    ("smollm", 2048, 1, 512, True, "f16", "f16"),
    ("smollm", 4096, 4, 512, False, "f16", "f16"),
    ("smollm", 1000, 3, 256, False, "q8_0", "f16"),
    ("gemma", 2048, 1, 512, True, "f16", "f16"),
    ("gemma", 4096, 4, 512, False, "f16", "f16"),
    ("gemma", 8192, 2, 1024, True, "q8_0", "q8_0"),
]


async def _measure(spec: WorkerSpec) -> LoadReport:
    client = await EngineClient.start(spec, timeout=120)
    try:
        return client.report
    finally:
        await client.stop()


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("model", "n_ctx", "parallel", "n_batch", "flash_attn", "type_k", "type_v"), SETTINGS
)
async def test_estimate_within_15_percent_of_worker(
    smollm_path: Path,
    gemma_path: Path,
    model: str,
    n_ctx: int,
    parallel: int,
    n_batch: int,
    flash_attn: bool,
    type_k: str,
    type_v: str,
) -> None:
    path = smollm_path if model == "smollm" else gemma_path
    spec = WorkerSpec(
        model_id=model,
        model_path=path,
        n_ctx=n_ctx,
        parallel=parallel,
        n_batch=n_batch,
        n_threads=1,
        flash_attn=flash_attn,
        cache_type_k=type_k,
        cache_type_v=type_v,
    )
    report = await _measure(spec)
    est = estimate(
        read_model(path),
        n_ctx=n_ctx,
        parallel=parallel,
        n_batch=n_batch,
        n_ubatch=n_batch,
        flash_attn=flash_attn,
        cache_type_k=type_k,
        cache_type_v=type_v,
    )
    measured = report.model_bytes + report.kv_bytes + report.compute_bytes
    estimated = est.weights + est.kv + est.recurrent + est.compute
    where = f"estimated {estimated / MIB:.1f} MiB vs measured {measured / MIB:.1f} MiB"
    assert abs(estimated - measured) <= 0.15 * measured, where
    # KV is exact up to the log's two-decimal MiB figures (one line per cache)
    assert abs(est.kv + est.recurrent - report.kv_bytes) <= 0.02 * MIB
    # the compute model is conservative, and the overhead covers what RSS shows beyond buffers
    assert est.compute >= report.compute_bytes
    assert est.total >= report.rss_bytes

"""app.scheduler.estimate on realistic headers (notes/scheduling.md §8) and synthetic edge cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.catalog.ggml_types import GGML_TYPE_IDS
from app.catalog.shards import ModelFile, read_model
from app.scheduler.estimate import (
    DEFAULT_OVERHEAD,
    GIB,
    MIB,
    MemoryEstimate,
    estimate,
    kv_bytes,
    layers,
    pad,
    row_bytes,
)
from tests.gguf_writer import Tensor, write_gguf
from tests.model_headers import PUBLISHED

DENSE = ("qwen3-14b", "qwen3-32b", "llama-3.3-70b")
# notes §8: KV @32k / @128k (f16, one sequence) in GiB, exact for the dense models
KV_TABLE = {
    "qwen3-14b": (5.0, 20.0),
    "qwen3-32b": (8.0, 32.0),
    "llama-3.3-70b": (10.0, 40.0),
    "qwen3-next-80b-a3b": (0.75, 3.0),
    "gpt-oss-120b": (1.125, 4.5),  # full-attention layers; the SWA part comes on top
}
SWA_GPT_OSS = 768 * 18 * 8 * 128 * 2  # 768 cells x 18 SWA layers x 8 heads x (64+64) x f16


def _kv(model: ModelFile, n_ctx: int, parallel: int = 1, **kw: object) -> int:
    return estimate(model, n_ctx=n_ctx, parallel=parallel, flash_attn=True, **kw).kv  # type: ignore[arg-type]


@pytest.mark.parametrize("name", list(PUBLISHED))
def test_weights_match_published_file_size(header_models: dict[str, ModelFile], name: str) -> None:
    weights = estimate(header_models[name], n_ctx=4096, parallel=1).weights
    assert weights == header_models[name].tensor_bytes
    assert weights / 1e9 == pytest.approx(PUBLISHED[name].file_gb, rel=0.03)


@pytest.mark.parametrize("name", DENSE)
def test_dense_kv_is_exact(header_models: dict[str, ModelFile], name: str) -> None:
    at32, at128 = KV_TABLE[name]
    model = header_models[name]
    assert _kv(model, 1) == 256 * PUBLISHED[name].kv_per_token  # one cell pads to 256
    assert _kv(model, 32768) == 32768 * PUBLISHED[name].kv_per_token == at32 * GIB
    assert _kv(model, 131072) == at128 * GIB
    # n_ctx is per slot: 4 slots of 8k are one unified 32k cache
    assert _kv(model, 8192, parallel=4) == at32 * GIB


def test_head_size_comes_from_keys_not_n_embd_over_n_head(
    header_models: dict[str, ModelFile],
) -> None:
    qwen32 = layers(header_models["qwen3-32b"].info)  # 5120 / 64 = 80, but key_length = 128
    assert {(ly.k_len, ly.v_len, ly.n_head_kv) for ly in qwen32} == {(128, 128, 8)}
    llama = layers(header_models["llama-3.3-70b"].info)  # no key_length: 8192 / 64 = 128
    assert {(ly.k_len, ly.v_len) for ly in llama} == {(128, 128)}


def test_gpt_oss_sliding_window(header_models: dict[str, ModelFile]) -> None:
    model = header_models["gpt-oss-120b"]
    lys = layers(model.info)
    assert [ly.swa for ly in lys] == [il % 2 == 0 for il in range(36)]  # openai-moe.cpp:9
    for n_ctx, (at32, at128) in ((32768, KV_TABLE["gpt-oss-120b"]),):
        assert _kv(model, n_ctx, swa_full=False) == at32 * GIB + SWA_GPT_OSS
        assert _kv(model, 4 * n_ctx, swa_full=False) == at128 * GIB + SWA_GPT_OSS
        assert _kv(model, n_ctx, swa_full=True) == 2 * at32 * GIB  # llama.cpp C-API default
    # one unified cache: the window is per sequence, 4 slots -> 4 x 128 + 512 = 1024 cells
    assert _kv(model, 8192, parallel=4, swa_full=False, kv_unified=True) == (
        at32 * GIB + 1024 * 18 * 8 * 256)
    # a stream per sequence (the worker's setting): 4 x pad256(128 + 512) = 4 x 768 cells
    assert _kv(model, 8192, parallel=4, swa_full=False) == (at32 * GIB + 4 * 768 * 18 * 8 * 256)
    # a short context caps the SWA cache at the full size
    assert _kv(model, 300, swa_full=False) == 512 * 36 * 8 * 256


def test_qwen3_next_recurrent_layers(header_models: dict[str, ModelFile]) -> None:
    model = header_models["qwen3-next-80b-a3b"]
    lys = layers(model.info)
    assert [il for il, ly in enumerate(lys) if not ly.recurrent] == list(range(3, 48, 4))
    assert sum(ly.n_head_kv > 0 for ly in lys) == 12
    at32, at128 = KV_TABLE["qwen3-next-80b-a3b"]
    assert _kv(model, 32768) == at32 * GIB
    assert _kv(model, 262144) == 6 * GIB
    per_seq = 36 * ((4 - 1) * (4096 + 2 * 16 * 128) + 128 * 4096) * 4  # ~75 MiB (notes §8)
    assert per_seq / MIB == pytest.approx(75.4, abs=0.1)
    for parallel in (1, 4):
        est = estimate(model, n_ctx=4096, parallel=parallel)
        assert est.recurrent == parallel * per_seq
    assert "recurrent state" in estimate(model, n_ctx=4096, parallel=1).describe()


@pytest.mark.parametrize(("cache", "ratio"), [("q8_0", 34 / 64), ("q4_0", 18 / 64), ("f32", 2.0)])
def test_quantized_cache_ratios(
    header_models: dict[str, ModelFile], cache: str, ratio: float
) -> None:
    model = header_models["llama-3.3-70b"]
    f16 = _kv(model, 32768)
    assert _kv(model, 32768, cache_type_k=cache, cache_type_v=cache) == f16 * ratio
    mixed = _kv(model, 32768, cache_type_k=cache)  # K and V types are independent
    assert mixed == f16 * (1 + ratio) / 2
    if cache == "q8_0":
        assert mixed / GIB == pytest.approx(7.656, abs=0.001)
        assert f16 * ratio / GIB == pytest.approx(5.31, abs=0.01)  # notes §8


def test_unknown_cache_type(header_models: dict[str, ModelFile]) -> None:
    with pytest.raises(ValueError, match="unknown cache type 'q3_k'"):
        estimate(header_models["qwen3-14b"], n_ctx=1024, parallel=1, cache_type_v="q3_k")


def test_compute_grows_with_context_without_flash_attention(
    header_models: dict[str, ModelFile],
) -> None:
    model = header_models["llama-3.3-70b"]
    no_fa = estimate(model, n_ctx=32768, parallel=1).compute
    fa = estimate(model, n_ctx=32768, parallel=1, flash_attn=True).compute
    auto = estimate(model, n_ctx=32768, parallel=1, flash_attn=None).compute
    kq = 512 * 32768 * 64 * 4  # the KQ scores of one layer: 4 GiB
    assert no_fa - fa >= kq
    assert auto == no_fa  # "auto" is counted as the larger case
    assert fa < 1 * GIB
    bigger_ubatch = estimate(
        model, n_ctx=32768, parallel=1, flash_attn=True, n_batch=2048, n_ubatch=2048
    ).compute
    assert bigger_ubatch > 3 * fa


def test_realistic_totals(header_models: dict[str, ModelFile]) -> None:
    """notes §8: Llama-3.3-70B at its full 128k context is ~85 GB, KV half of it."""
    est = estimate(header_models["llama-3.3-70b"], n_ctx=131072, parallel=1, flash_attn=True)
    assert (est.weights + est.kv) / 1e9 == pytest.approx(85.4, abs=0.2)
    assert est.total < 82 * GIB
    assert est.overhead == DEFAULT_OVERHEAD


def test_memory_estimate_total_and_describe() -> None:
    est = MemoryEstimate(weights=9 * GIB, kv=5 * GIB, recurrent=0, compute=GIB // 2, overhead=0)
    assert est.total == 14 * GIB + GIB // 2
    text = est.describe()
    assert text.startswith("9.0 GiB weights + 5.0 GiB KV + 0.5 GiB compute")
    assert text.endswith("= 14.5 GiB")
    assert "recurrent" not in text


def test_helpers() -> None:
    assert [pad(n) for n in (1, 256, 257, 4000)] == [256, 256, 512, 4096]
    assert row_bytes("f16", 1024) == 2048
    assert row_bytes("q8_0", 1024) == 32 * 34
    assert row_bytes("q4_1", 64) == 40


def test_bad_arguments(header_models: dict[str, ModelFile]) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        estimate(header_models["qwen3-14b"], n_ctx=0, parallel=1)


# synthetic headers for the metadata variants


def _write(tmp_path: Path, arch: str, extra: dict[str, object]) -> ModelFile:
    meta: dict[str, object] = {
        "general.architecture": arch,
        f"{arch}.block_count": 6,
        f"{arch}.embedding_length": 256,
        f"{arch}.attention.head_count": 4,
        f"{arch}.feed_forward_length": 512,
        **extra,
    }
    tensor = Tensor("token_embd.weight", (256, 1000), GGML_TYPE_IDS["F16"])
    return read_model(write_gguf(tmp_path / f"{arch}.gguf", meta, [tensor]))


def test_missing_head_count_kv_defaults_to_head_count(tmp_path: Path) -> None:
    model = _write(tmp_path, "llama", {})
    assert {(ly.n_head_kv, ly.k_len) for ly in layers(model.info)} == {(4, 64)}
    assert _kv(model, 256) == 256 * 6 * 4 * 128 * 2


def test_per_layer_kv_heads_zero_means_recurrent(tmp_path: Path) -> None:
    model = _write(
        tmp_path,
        "jamba",
        {
            "jamba.attention.head_count_kv": [0, 0, 0, 2, 0, 0],
            "jamba.ssm.conv_kernel": 4,
            "jamba.ssm.inner_size": 512,
            "jamba.ssm.state_size": 16,
            "jamba.ssm.group_count": 0,
        },
    )
    assert [ly.recurrent for ly in layers(model.info)] == [True] * 3 + [False] + [True] * 2
    assert _kv(model, 256) == 256 * 2 * 128 * 2
    assert estimate(model, n_ctx=256, parallel=2).recurrent == 2 * 5 * (3 * 512 + 16 * 512) * 4


def test_swa_pattern_from_metadata(tmp_path: Path) -> None:
    flags = [True, False, True, True, False, False]
    as_flags = _write(
        tmp_path,
        "gemma3",
        {
            "gemma3.attention.sliding_window": 512,
            "gemma3.attention.sliding_window_pattern": flags,
        },
    )
    assert [ly.swa for ly in layers(as_flags.info)] == flags
    period = _write(
        tmp_path,
        "cohere2",
        {
            "cohere2.attention.sliding_window": 512,
            "cohere2.attention.sliding_window_pattern": 3,
        },
    )
    assert [ly.swa for ly in layers(period.info)] == [True, True, False] * 2
    unknown = _write(tmp_path, "newarch", {"newarch.attention.sliding_window": 512})
    assert not any(ly.swa for ly in layers(unknown.info))  # counted as full attention


def test_gemma3_swa_cells_match_llama_cpp(gemma_path: Path) -> None:
    """Cell counts llama.cpp logged for gemma-3-270m with swa_full=false (kv_unified, FA on):
    "creating SWA KV cache, size = 2560 / 1792 / 1024 cells" for the settings below."""
    model = read_model(gemma_path)
    lys = layers(model.info)
    assert [ly.swa for ly in lys].count(True) == 15  # gemma3.cpp:7 period 6
    for n_ctx, parallel, ubatch, swa_cells in (
        (4096, 4, 512, 2560),
        (2048, 3, 256, 1792),
        (8192, 1, 512, 1024),
    ):
        est = estimate(
            model,
            n_ctx=n_ctx,
            parallel=parallel,
            n_batch=ubatch,
            n_ubatch=ubatch,
            flash_attn=True,
            swa_full=False,
            kv_unified=True,
        )
        per_cell = 1 * (256 + 256) * 2
        assert est.kv == (n_ctx * parallel * 3 + swa_cells * 15) * per_cell
        assert kv_bytes(model.info, cells=n_ctx * parallel, cells_swa=swa_cells) == est.kv

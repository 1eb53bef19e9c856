"""Memory one llama.cpp worker needs, from the model's GGUF header and its settings (pure).

Mirrors the vendored llama.cpp (llama-cpp-python 0.3.36, `vendor/llama.cpp/src/`); file:line
references below are to that tree. The worker (app/engine/model.py) creates ONE context with
`n_ctx = n_ctx_per_slot * parallel`, `n_seq_max = parallel`, `kv_unified = true`,
`n_ubatch = n_batch`, `n_outputs_max = parallel`, and llama.cpp's default `swa_full = true`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from app.catalog.ggml_types import GGML_TYPE_IDS, GGML_TYPES
from app.catalog.gguf import GGUFInfo
from app.catalog.shards import ModelFile

MIB = 1 << 20
GIB = 1 << 30
KV_PAD = 256  # llama-context.cpp:290 `cparams.n_ctx = GGML_PAD(cparams.n_ctx, 256)`
DEFAULT_OVERHEAD = 512 * MIB
"""Per-process margin: Python + llama.cpp outside its buffers measured 53 MiB (SmolLM2) and
72 MiB (gemma-3, 262k vocab) of RSS on the CPU backend; GPU runtimes add host memory (Ollama
reserves 457 MiB per ROCm device), so 512 MiB covers either."""

# KV cache types the worker accepts -> (elements per block, bytes per block): f16 2 B, q8_0 34/32 B
CACHE_TYPES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        name: GGML_TYPES[GGML_TYPE_IDS[name.upper()]][1:]
        for name in ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1", "iq4_nl")
    }
)

# arch -> (period, dense_first) of `load_swa_pattern(ml, period[, dense_first])` in
# src/models/<arch>.cpp; used when `{arch}.attention.sliding_window_pattern` is absent.
# llama-hparams.cpp:8 set_swa_pattern: SWA iff il % p < p-1 (or il % p != 0 if dense_first).
SWA_PERIODS: Mapping[str, tuple[int, bool]] = MappingProxyType(
    {
        **dict.fromkeys(("gemma2", "gpt-oss"), (2, False)),
        **dict.fromkeys(("gemma3", "gemma-embedding"), (6, False)),
        **dict.fromkeys(("cohere2", "afmoe", "exaone4", "exaone-moe", "llama4"), (4, False)),
        **dict.fromkeys(("mellum", "olmo2", "muse-glimmer"), (4, False)),
        **dict.fromkeys(("cohere2moe", "smallthinker", "laguna"), (4, True)),
        **{"gemma3n": (5, False), "plamo3": (8, False), "modern-bert": (3, True)},
    }
)
# llama-arch.cpp:1071 llm_arch_is_recurrent: every layer is recurrent, none has a KV cache
RECURRENT_ARCHS = frozenset({"mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7"})
# models/qwen3next.cpp:17, qwen35.cpp:17: recurrent iff (il + 1) % full_attention_interval != 0
INTERVAL_HYBRIDS = frozenset({"qwen3next", "qwen35", "qwen35moe"})


def pad(n: int, to: int = KV_PAD) -> int:
    """`n` rounded up to a multiple of `to` (GGML_PAD)."""
    return -(-n // to) * to


def row_bytes(cache_type: str, n_elements: int) -> int:
    """Bytes of `n_elements` of a cache type (ggml_row_size); ValueError if unknown."""
    try:
        blk, size = CACHE_TYPES[cache_type]
    except KeyError:
        known = ", ".join(CACHE_TYPES)
        raise ValueError(f"unknown cache type {cache_type!r} (known: {known})") from None
    return -(-n_elements // blk) * size


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of one loaded model, by kind."""

    weights: int
    kv: int
    recurrent: int
    compute: int
    overhead: int

    @property
    def total(self) -> int:
        """Everything."""
        return self.weights + self.kv + self.recurrent + self.compute + self.overhead

    def describe(self) -> str:
        """Breakdown such as "9.0 GiB weights + 5.0 GiB KV + ... = 14.5 GiB"."""
        parts = [
            (self.weights, "weights"),
            (self.kv, "KV"),
            (self.recurrent, "recurrent state"),
            (self.compute, "compute"),
            (self.overhead, "overhead"),
        ]
        text = " + ".join(
            f"{b / GIB:.1f} GiB {name}" for b, name in parts if b or name != "recurrent state"
        )
        return f"{text} = {self.total / GIB:.1f} GiB"


@dataclass(frozen=True)
class Layer:
    """Attention geometry of one trunk layer (n_head_kv == 0: no KV cache)."""

    n_head: int
    n_head_kv: int
    k_len: int
    v_len: int
    swa: bool
    recurrent: bool


def _per_layer(value: int | tuple[int, ...] | None, n: int, default: int, what: str) -> list[int]:
    if value is None:
        return [default] * n
    if isinstance(value, int):
        return [value] * n
    if len(value) < n:
        raise ValueError(f"{what} has {len(value)} entries for {n} layers")
    return list(value[:n])


def _swa_flags(info: GGUFInfo, arch: str, n: int) -> list[bool]:
    """llama-model.cpp:3434 load_swa_pattern: per-layer flags, else a period, else the arch's."""
    if not info.sliding_window:
        return [False] * n
    pattern = info.sliding_window_pattern
    if isinstance(pattern, tuple):
        return [bool(x) for x in pattern[:n]] + [False] * (n - len(pattern))
    if arch not in SWA_PERIODS:
        return [False] * n  # unknown arch: count its layers as full attention (the larger)
    period, dense_first = SWA_PERIODS[arch]
    period = pattern if isinstance(pattern, int) else period
    if period == 0:
        return [True] * n
    return [il % period != 0 if dense_first else il % period < period - 1 for il in range(n)]


def _recurrent_flags(info: GGUFInfo, arch: str, n: int, n_head_kv: list[int]) -> list[bool]:
    flags = info.metadata.get(f"{arch}.attention.recurrent_layers")
    if isinstance(flags, tuple):
        return [bool(x) for x in flags[:n]]
    if arch in RECURRENT_ARCHS:
        return [True] * n
    if arch in INTERVAL_HYBRIDS:
        interval = info.full_attention_interval or 4
        return [(il + 1) % interval != 0 for il in range(n)]
    has_ssm = info.ssm_inner_size is not None or info.ssm_state_size is not None
    return [has_ssm and kv == 0 for kv in n_head_kv]


def layers(info: GGUFInfo) -> list[Layer]:
    """Per-layer attention geometry of the trunk (MTP/nextn layers have no KV in the main
    context: llama-model.cpp:2700, 2802). ValueError if the header lacks what is needed."""
    arch, n_all = info.architecture, info.block_count
    if arch is None or not n_all:
        raise ValueError("GGUF header has no general.architecture / {arch}.block_count")
    n = n_all - (info.nextn_predict_layers or 0)
    heads = _per_layer(info.head_count, n_all, 0, "head_count")[:n]
    # llama-model.cpp:1402 n_head_kv defaults to n_head
    kv_heads = _per_layer(info.head_count_kv, n_all, 0, "head_count_kv")[:n]
    if info.head_count_kv is None:
        kv_heads = list(heads)
    # llama-model.cpp:1439: head size falls back to n_embd / n_head(0) only when keys are absent
    guess = (info.embedding_length or 0) // heads[0] if heads and heads[0] else 0
    k_len, v_len = info.key_length or guess, info.value_length or guess
    k_swa, v_swa = info.key_length_swa or k_len, info.value_length_swa or v_len
    swa = _swa_flags(info, arch, n)
    recr = _recurrent_flags(info, arch, n, kv_heads)
    return [
        Layer(
            heads[il],
            0 if recr[il] else kv_heads[il],
            k_swa if swa[il] else k_len,
            v_swa if swa[il] else v_len,
            swa[il],
            recr[il],
        )
        for il in range(n)
    ]


def kv_bytes(
    info: GGUFInfo,
    *,
    cells: int,
    cells_swa: int,
    cache_type_k: str = "f16",
    cache_type_v: str = "f16",
    flash_attn: bool = False,
) -> int:
    """KV cache bytes (llama-kv-cache.cpp:233: per layer K [n_embd_k_gqa, cells] and V
    [n_embd_v_gqa, cells]; without flash attention V rows are padded to the widest layer, :210)."""
    attn = [ly for ly in layers(info) if ly.n_head_kv > 0]
    v_max = max((ly.n_head_kv * ly.v_len for ly in attn), default=0)
    total = 0
    for ly in attn:
        n_cells = cells_swa if ly.swa else cells
        v_elems = ly.n_head_kv * ly.v_len if flash_attn else v_max
        k = row_bytes(cache_type_k, ly.n_head_kv * ly.k_len)
        total += n_cells * (k + row_bytes(cache_type_v, v_elems))
    return total


def recurrent_bytes(info: GGUFInfo, n_seq: int) -> int:
    """Recurrent state, f32 (llama-memory-recurrent.cpp:101, llama-hparams.cpp n_embd_r/n_embd_s:
    (d_conv-1)(d_inner + 2 n_group d_state) + d_state d_inner per layer and sequence)."""
    n_recr = sum(ly.recurrent for ly in layers(info))
    d_conv, d_inner = info.ssm_conv_kernel or 0, info.ssm_inner_size or 0
    d_state, n_group = info.ssm_state_size or 0, info.ssm_group_count or 0
    per_layer = max(d_conv - 1, 0) * (d_inner + 2 * n_group * d_state) + d_state * d_inner
    return n_recr * per_layer * 4 * max(1, n_seq)


def _ffn_width(info: GGUFInfo) -> int:
    """Widest FFN activation per token (MoE: the used experts + shared expert + router)."""
    dense = info.feed_forward_length
    width = max(dense) if isinstance(dense, tuple) else dense or 0
    meta, arch = info.metadata, info.architecture
    exp = meta.get(f"{arch}.expert_feed_forward_length")
    if info.expert_count and isinstance(exp, int):
        shared = meta.get(f"{arch}.expert_shared_feed_forward_length")
        moe = (info.expert_used_count or 1) * exp + (shared if isinstance(shared, int) else 0)
        width = max(width, moe + info.expert_count)
    return width


def estimate(
    file: ModelFile,
    *,
    n_ctx: int,
    parallel: int,
    cache_type_k: str = "f16",
    cache_type_v: str = "f16",
    n_batch: int = 512,
    n_ubatch: int = 512,
    flash_attn: bool | None = False,
    swa_full: bool = True,
    kv_unified: bool = False,
    overhead: int = DEFAULT_OVERHEAD,
    draft_outputs: int = 0,
) -> MemoryEstimate:
    """Memory of `file` loaded by a worker with `parallel` slots of `n_ctx` tokens each.

    `flash_attn=None` (llama.cpp "auto") is counted as disabled, the larger case. `swa_full`
    is llama.cpp's C-API default (llama-context.cpp:3788), which the worker keeps today.
    `kv_unified=False` (the worker's setting) gives each sequence a KV stream of its own of
    pad256(n_ctx) cells (llama-context.cpp:295, llama-kv-cache.cpp:84): the attention graph
    then spans one stream's cells, not all of them. `draft_outputs` is the most draft tokens
    speculative decoding verifies in one step (logits rows beyond one per sequence).
    """
    if n_ctx < 1 or parallel < 1 or n_batch < 1 or n_ubatch < 1:
        raise ValueError("n_ctx, parallel, n_batch and n_ubatch must be positive")
    info, fa = file.info, bool(flash_attn)
    lys = layers(info)
    streams = 1 if kv_unified else parallel
    seqs_per_stream = parallel if kv_unified else 1
    stream_cells = pad(n_ctx * seqs_per_stream)
    cells = stream_cells * streams
    ubatch = min(n_batch, n_ubatch)  # llama-context.cpp:248
    # llama-kv-cache-iswa.cpp:73 (the window is per sequence, times the sequences per stream)
    n_swa = info.sliding_window or 0
    stream_swa = (stream_cells if swa_full
                  else pad(min(stream_cells, n_swa * seqs_per_stream + ubatch)))
    cells_swa = stream_swa * streams
    kv = kv_bytes(
        info,
        cells=cells,
        cells_swa=cells_swa,
        cache_type_k=cache_type_k,
        cache_type_v=cache_type_v,
        flash_attn=fa,
    )
    recurrent = recurrent_bytes(info, parallel)
    compute = _compute(info, lys, stream_cells, stream_swa, ubatch,
                       parallel + max(0, draft_outputs), fa)
    return MemoryEstimate(file.tensor_bytes, kv, recurrent, compute, overhead)


def with_draft(target: MemoryEstimate, draft: MemoryEstimate) -> MemoryEstimate:
    """A target and its draft model in one worker process (one runtime overhead)."""
    return MemoryEstimate(
        target.weights + draft.weights,
        target.kv + draft.kv,
        target.recurrent + draft.recurrent,
        target.compute + draft.compute,
        target.overhead,
    )


def _compute(
    info: GGUFInfo,
    lys: list[Layer],
    cells: int,
    cells_swa: int,
    ubatch: int,
    n_seq: int,
    fa: bool,
) -> int:
    """Compute buffers + logits output buffer, calibrated on the real worker (see README.md).

    Worst-case graph (llama-context.cpp:629): n_tokens = min(n_ctx, n_ubatch). Terms: one KQ
    mask per KV cache (f16 with flash attention, else f32; llama-graph.cpp:41); without flash
    attention the KQ scores [cells, n_tokens, n_head] f32 (llama-graph.cpp:2688, softmax in
    place); activations ~ 3 FFN widths + 2 n_embd + 2 q widths per token; gated delta-net/SSM
    layers ~ 4 conv widths per token [unmeasured]; logits n_vocab x n_seq f32, twice (output
    buffer, llama-context.cpp:2141, and the graph's result tensor).
    """
    n_tok = min(cells, ubatch)
    attn = [ly for ly in lys if ly.n_head_kv > 0]
    has_full, has_swa = any(not ly.swa for ly in attn), any(ly.swa for ly in attn)
    caches = [cells] * has_full + [cells_swa] * has_swa
    mask = n_tok * (2 if fa else 4) * sum(caches)
    n_head = max((ly.n_head for ly in attn), default=0)
    kq = 0 if fa else n_tok * max(caches, default=0) * n_head * 4
    n_embd = info.embedding_length or 0
    n_q = max((ly.n_head * ly.k_len for ly in lys), default=0)
    act = 4 * n_tok * (3 * _ffn_width(info) + 2 * n_embd + 2 * n_q)
    if any(ly.recurrent for ly in lys):
        d_inner, d_state = info.ssm_inner_size or 0, info.ssm_state_size or 0
        act += 4 * n_tok * 4 * (d_inner + 2 * (info.ssm_group_count or 0) * d_state)
    logits = 2 * 4 * (info.vocab_size or 0) * n_seq
    return mask + kq + act + logits

"""Realistic GGUF headers (real metadata + full tensor tables, no weights) of five models that
matter on a 128 GB box, quantized like llama.cpp's Q4_K_M (llama-quant.cpp, simplified):

    path = write_model(tmp_path, "qwen3-14b")          # -> Path of the (first) .gguf
    model = read_model(path)

Shapes follow the models' config.json and llama.cpp's tensor creation (src/models/*.cpp).
`PUBLISHED` holds the published file sizes and the KV figures of notes/scheduling.md §8.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.catalog.ggml_types import GGML_TYPE_IDS
from app.catalog.gguf import ArrayInfo
from tests.gguf_writer import INT32, STRING, Tensor, write_gguf, write_split

F32, Q4_K, Q5_K, Q6_K, Q5_0, Q8_0, MXFP4 = (
    GGML_TYPE_IDS[n] for n in ("F32", "Q4_K", "Q5_K", "Q6_K", "Q5_0", "Q8_0", "MXFP4")
)
# llama-quant.cpp fallback when a row is not a multiple of the 256-element super-block
_FALLBACK = {Q4_K: Q5_0, Q5_K: Q5_0, Q6_K: Q8_0}
_NOT_QUANTIZED = ("_norm", "ffn_gate_inp", "ssm_conv1d", "rope_freqs", "attn_sinks")


@dataclass(frozen=True)
class Published:
    """What the model card / notes §8 say (sizes in decimal GB, KV in bytes)."""

    file_gb: float
    kv_per_token: int  # f16, full-attention layers only
    n_ctx_train: int
    shards: int = 1


PUBLISHED: dict[str, Published] = {
    "qwen3-14b": Published(9.0, 163_840, 40_960),
    "qwen3-32b": Published(19.8, 262_144, 40_960),
    "llama-3.3-70b": Published(42.5, 327_680, 131_072),
    "qwen3-next-80b-a3b": Published(48.4, 24_576, 262_144),
    "gpt-oss-120b": Published(62.8, 36_864, 131_072, shards=2),
}


def _more_bits(i: int, n: int) -> bool:
    """llama-quant.cpp use_more_bits: first/last eighth and every third layer in between."""
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


class _Q4KM:
    """Assigns Q4_K_M types to tensors in creation order (attn_v counted like llama-quant)."""

    def __init__(self, n_layer: int, n_attn_v: int, *, bump_v: bool = False) -> None:
        self.n_layer, self.n_attn_v, self.bump_v, self.i_attn_v = n_layer, n_attn_v, bump_v, 0
        self.tensors: list[Tensor] = []

    def add(self, name: str, *shape: int, ggml_type: int | None = None) -> None:
        if ggml_type is None:
            ggml_type = self._type(name, shape)
        if shape[0] % 256 and ggml_type in _FALLBACK:
            ggml_type = _FALLBACK[ggml_type]
        self.tensors.append(Tensor(name, shape, ggml_type))

    def _type(self, name: str, shape: tuple[int, ...]) -> int:
        if len(shape) == 1 or any(s in name for s in _NOT_QUANTIZED):
            return F32
        if name == "output.weight":
            return Q6_K
        layer = int(name.split(".")[1]) if name.startswith("blk.") else 0
        if ".attn_v." in name:
            self.i_attn_v += 1
            if _more_bits(self.i_attn_v - 1, self.n_attn_v):
                return Q6_K
            return Q5_K if self.bump_v else Q4_K  # llama-quant: LLM_TYPE_70B bumps attn_v
        if ".ffn_down" in name and _more_bits(layer, self.n_layer):
            return Q6_K
        return Q4_K


def _tokenizer(n_vocab: int, n_merges: int, model: str = "gpt2") -> dict[str, object]:
    return {
        "tokenizer.ggml.model": model,
        "tokenizer.ggml.tokens": ArrayInfo(STRING, n_vocab),
        "tokenizer.ggml.token_type": ArrayInfo(INT32, n_vocab),
        "tokenizer.ggml.merges": ArrayInfo(STRING, n_merges),
        "tokenizer.ggml.eos_token_id": 151645 if n_vocab == 151936 else 2,
        "tokenizer.chat_template": "{% for m in messages %}{{ m['content'] }}{% endfor %}",
    }


@dataclass(frozen=True)
class _Dense:
    """A dense decoder (Qwen3 / Llama layout)."""

    arch: str
    name: str
    n_layer: int
    n_embd: int
    n_ff: int
    n_head: int
    n_kv: int
    n_vocab: int
    n_ctx: int
    head_dim: int = 128

    def build(self) -> tuple[dict[str, object], list[Tensor]]:
        a, qwen = self.arch, self.arch == "qwen3"
        meta: dict[str, object] = {
            "general.architecture": a,
            "general.name": self.name,
            "general.file_type": 15,
            f"{a}.block_count": self.n_layer,
            f"{a}.context_length": self.n_ctx,
            f"{a}.embedding_length": self.n_embd,
            f"{a}.feed_forward_length": self.n_ff,
            f"{a}.attention.head_count": self.n_head,
            f"{a}.attention.head_count_kv": self.n_kv,
            f"{a}.rope.freq_base": 1_000_000.0 if qwen else 500_000.0,
            f"{a}.attention.layer_norm_rms_epsilon": 1e-6,
        }
        if qwen:  # Qwen3 GGUFs carry the head size; Llama's is n_embd / n_head
            meta[f"{a}.attention.key_length"] = meta[f"{a}.attention.value_length"] = self.head_dim
        else:
            meta[f"{a}.rope.dimension_count"] = self.head_dim
            meta[f"{a}.vocab_size"] = self.n_vocab
        meta.update(_tokenizer(self.n_vocab, 151_387 if qwen else 280_147))
        # llama-quant.cpp bumps attn_v of LLM_TYPE_70B models to Q5_K
        q = _Q4KM(self.n_layer, self.n_layer, bump_v=self.n_layer == 80)
        n_embd, n_ff, hd = self.n_embd, self.n_ff, self.head_dim
        q_dim, kv_dim = self.n_head * hd, self.n_kv * hd
        q.add("token_embd.weight", n_embd, self.n_vocab)
        if not qwen:
            q.add("rope_freqs.weight", self.head_dim // 2)
        for i in range(self.n_layer):
            b = f"blk.{i}."
            q.add(b + "attn_norm.weight", n_embd)
            q.add(b + "attn_q.weight", n_embd, q_dim)
            q.add(b + "attn_k.weight", n_embd, kv_dim)
            q.add(b + "attn_v.weight", n_embd, kv_dim)
            q.add(b + "attn_output.weight", q_dim, n_embd)
            if qwen:
                q.add(b + "attn_q_norm.weight", hd)
                q.add(b + "attn_k_norm.weight", hd)
            q.add(b + "ffn_norm.weight", n_embd)
            q.add(b + "ffn_gate.weight", n_embd, n_ff)
            q.add(b + "ffn_up.weight", n_embd, n_ff)
            q.add(b + "ffn_down.weight", n_ff, n_embd)
        q.add("output_norm.weight", n_embd)
        q.add("output.weight", n_embd, self.n_vocab)
        return meta, q.tensors


# Qwen3-32B: 64 heads of 128 although n_embd / n_head = 80; Llama-3.3-70B has no key_length
QWEN3_14B = _Dense("qwen3", "Qwen3-14B", 40, 5120, 17408, 40, 8, 151_936, 40_960)
QWEN3_32B = _Dense("qwen3", "Qwen3-32B", 64, 5120, 25600, 64, 8, 151_936, 40_960)
LLAMA33_70B = _Dense("llama", "Llama 3.3 70B Instruct", 80, 8192, 28672, 64, 8, 128_256, 131_072)


def qwen3_next_80b() -> tuple[dict[str, object], list[Tensor]]:
    """Qwen3-Next-80B-A3B: 48 layers, every 4th full attention (16 heads, 2 KV heads of 256),
    the rest gated delta-net; 512 experts (10 used) of 512 + one shared expert."""
    a, n_layer, n_embd, n_exp, ff_exp, n_vocab = "qwen3next", 48, 2048, 512, 512, 151_936
    d_state, n_group, dt_rank, d_inner, d_conv = 128, 16, 32, 4096, 4
    meta: dict[str, object] = {
        "general.architecture": a,
        "general.name": "Qwen3-Next-80B-A3B-Thinking",
        "general.file_type": 15,
        f"{a}.block_count": n_layer,
        f"{a}.context_length": 262_144,
        f"{a}.embedding_length": n_embd,
        f"{a}.feed_forward_length": 5120,
        f"{a}.attention.head_count": 16,
        f"{a}.attention.head_count_kv": 2,
        f"{a}.attention.key_length": 256,
        f"{a}.attention.value_length": 256,
        f"{a}.rope.freq_base": 10_000_000.0,
        f"{a}.rope.dimension_count": 64,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-6,
        f"{a}.expert_count": n_exp,
        f"{a}.expert_used_count": 10,
        f"{a}.expert_feed_forward_length": ff_exp,
        f"{a}.expert_shared_feed_forward_length": ff_exp,
        f"{a}.ssm.conv_kernel": d_conv,
        f"{a}.ssm.state_size": d_state,
        f"{a}.ssm.group_count": n_group,
        f"{a}.ssm.time_step_rank": dt_rank,
        f"{a}.ssm.inner_size": d_inner,
        f"{a}.full_attention_interval": 4,
    }
    meta.update(_tokenizer(n_vocab, 151_387))
    key_dim, value_dim = d_state * n_group, d_state * dt_rank
    q = _Q4KM(n_layer, n_layer // 4)
    q.add("token_embd.weight", n_embd, n_vocab)
    for i in range(n_layer):
        b = f"blk.{i}."
        q.add(b + "attn_norm.weight", n_embd)
        q.add(b + "post_attention_norm.weight", n_embd)
        if (i + 1) % 4 == 0:  # full attention; q carries the output gate (x2)
            q.add(b + "attn_q.weight", n_embd, 16 * 256 * 2)
            q.add(b + "attn_k.weight", n_embd, 2 * 256)
            q.add(b + "attn_v.weight", n_embd, 2 * 256)
            q.add(b + "attn_output.weight", 16 * 256, n_embd)
            q.add(b + "attn_q_norm.weight", 256)
            q.add(b + "attn_k_norm.weight", 256)
        else:  # gated delta net
            q.add(b + "attn_qkv.weight", n_embd, key_dim * 2 + value_dim)
            q.add(b + "attn_gate.weight", n_embd, value_dim)
            q.add(b + "ssm_conv1d.weight", d_conv, key_dim * 2 + value_dim)
            q.add(b + "ssm_dt.bias", dt_rank)
            q.add(b + "ssm_a", dt_rank)
            q.add(b + "ssm_ba.weight", n_embd, dt_rank * 2)
            q.add(b + "ssm_norm.weight", d_state)
            q.add(b + "ssm_out.weight", value_dim, n_embd)
        q.add(b + "ffn_gate_inp.weight", n_embd, n_exp)
        q.add(b + "ffn_gate_exps.weight", n_embd, ff_exp, n_exp)
        q.add(b + "ffn_up_exps.weight", n_embd, ff_exp, n_exp)
        q.add(b + "ffn_down_exps.weight", ff_exp, n_embd, n_exp)
        q.add(b + "ffn_gate_inp_shexp.weight", n_embd)
        q.add(b + "ffn_gate_shexp.weight", n_embd, ff_exp)
        q.add(b + "ffn_up_shexp.weight", n_embd, ff_exp)
        q.add(b + "ffn_down_shexp.weight", ff_exp, n_embd)
    q.add("output_norm.weight", n_embd)
    q.add("output.weight", n_embd, n_vocab)
    return meta, q.tensors


def gpt_oss_120b() -> tuple[dict[str, object], list[Tensor]]:
    """gpt-oss-120b: 36 layers alternating SWA(128)/full, 64 heads / 8 KV heads of 64,
    128 experts (4 used) of 2880 kept in MXFP4; rows of 2880 fall back from K-quants."""
    a, n_layer, n_embd, n_exp, n_vocab = "gpt-oss", 36, 2880, 128, 201_088
    meta: dict[str, object] = {
        "general.architecture": a,
        "general.name": "Gpt-Oss-120B",
        "general.file_type": 15,
        f"{a}.block_count": n_layer,
        f"{a}.context_length": 131_072,
        f"{a}.embedding_length": n_embd,
        f"{a}.feed_forward_length": 2880,
        f"{a}.attention.head_count": 64,
        f"{a}.attention.head_count_kv": 8,
        f"{a}.attention.key_length": 64,
        f"{a}.attention.value_length": 64,
        f"{a}.attention.sliding_window": 128,
        f"{a}.attention.layer_norm_rms_epsilon": 1e-5,
        f"{a}.rope.freq_base": 150_000.0,
        f"{a}.rope.scaling.type": "yarn",
        f"{a}.rope.scaling.factor": 32.0,
        f"{a}.rope.scaling.original_context_length": 4096,
        f"{a}.expert_count": n_exp,
        f"{a}.expert_used_count": 4,
        f"{a}.expert_feed_forward_length": 2880,
    }
    meta.update(_tokenizer(n_vocab, 446_189))
    q = _Q4KM(n_layer, n_layer)
    q.add("token_embd.weight", n_embd, n_vocab)
    for i in range(n_layer):
        b = f"blk.{i}."
        q.add(b + "attn_norm.weight", n_embd)
        for part, rows in (("q", 64 * 64), ("k", 8 * 64), ("v", 8 * 64)):
            q.add(b + f"attn_{part}.weight", n_embd, rows)
            q.add(b + f"attn_{part}.bias", rows)
        q.add(b + "attn_output.weight", 64 * 64, n_embd)
        q.add(b + "attn_output.bias", n_embd)
        q.add(b + "attn_sinks.weight", 64)
        q.add(b + "post_attention_norm.weight", n_embd)
        q.add(b + "ffn_gate_inp.weight", n_embd, n_exp)
        q.add(b + "ffn_gate_inp.bias", n_exp)
        for part in ("gate", "up", "down"):
            q.add(b + f"ffn_{part}_exps.weight", 2880, 2880, n_exp, ggml_type=MXFP4)
            q.add(b + f"ffn_{part}_exps.bias", 2880, n_exp)
    q.add("output_norm.weight", n_embd)
    q.add("output.weight", n_embd, n_vocab)
    return meta, q.tensors


BUILDERS: dict[str, Callable[[], tuple[dict[str, object], list[Tensor]]]] = {
    "qwen3-14b": QWEN3_14B.build,
    "qwen3-32b": QWEN3_32B.build,
    "llama-3.3-70b": LLAMA33_70B.build,
    "qwen3-next-80b-a3b": qwen3_next_80b,
    "gpt-oss-120b": gpt_oss_120b,
}


def write_model(directory: Path, name: str) -> Path:
    """Write model `name` (a key of BUILDERS) as a sparse GGUF (split like the published one);
    returns the path to pass to read_model."""
    meta, tensors = BUILDERS[name]()
    shards = PUBLISHED[name].shards
    if shards == 1:
        return write_gguf(directory / f"{name}-Q4_K_M.gguf", meta, tensors)
    return write_split(directory / f"{name}-Q4_K_M", meta, tensors, shards)[0]

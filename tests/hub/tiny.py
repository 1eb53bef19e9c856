"""Small but well-formed llama-architecture GGUF files for the hub tests (written with the
project's test GGUF writer; the tensor data is a zero-filled hole of the right size)."""

from __future__ import annotations

from pathlib import Path

from app.catalog.ggml_types import GGML_TYPE_IDS
from tests.gguf_writer import Tensor, write_gguf, write_split

F32 = GGML_TYPE_IDS["F32"]
META: dict[str, object] = {
    "general.architecture": "llama", "general.name": "tiny", "llama.block_count": 2,
    "llama.context_length": 2048, "llama.embedding_length": 64,
    "llama.feed_forward_length": 128, "llama.attention.head_count": 4,
    "llama.attention.head_count_kv": 2,
}


def tensors(rows: int) -> list[Tensor]:
    """Two layers' worth of names; `rows` sets the size (64 * rows * 4 bytes each)."""
    return [Tensor("token_embd.weight", (64, rows), F32),
            Tensor("blk.0.attn_q.weight", (64, 64), F32),
            Tensor("blk.1.attn_q.weight", (64, 64), F32),
            Tensor("output.weight", (64, rows), F32)]


def tiny_gguf(path: Path, rows: int = 1000, name: str = "tiny") -> Path:
    """A single-file model of about rows * 512 bytes."""
    return write_gguf(path, {**META, "general.name": name}, tensors(rows))


def tiny_split(prefix: Path, shards: int, rows: int = 1000) -> list[Path]:
    return write_split(prefix, META, tensors(rows), shards)


def tiny_mmproj(path: Path) -> Path:
    return write_gguf(path, {"general.architecture": "clip", "clip.has_vision_encoder": True},
                      [Tensor("v.patch_embd.weight", (64, 64), F32)])

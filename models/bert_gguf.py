"""Convert a sentence-transformers BERT checkpoint (safetensors) to a llama.cpp GGUF file.

Standard library only (it runs before the venv has any package): safetensors is a JSON
header plus raw little-endian arrays, GGUF v3 is a header, key/values, tensor infos and
aligned data. 2-D weights are written as F16 (IEEE round-to-nearest-even, as numpy does),
everything else as F32, the way llama.cpp's own converter lays out BERT models: the
vocabulary in "phantom space" form (word starts get U+2581, `##` continuations lose it),
mean pooling, non-causal attention. The output is byte-for-byte deterministic, so
fetch.py pins its sha256.
"""

from __future__ import annotations

import json
import struct
import sys
from array import array
from pathlib import Path
from typing import Any, BinaryIO

ALIGN = 32
GGUF_MAGIC = b"GGUF"
GGUF_VERSION = 3
# GGUF value types
U32, I32, F32, BOOL, STRING, ARRAY = 4, 5, 6, 7, 8, 9
# ggml tensor types
T_F32, T_F16 = 0, 1
FILE_TYPE_MOSTLY_F16 = 1
POOLING_MEAN = 1
TOKEN_NORMAL, TOKEN_CONTROL = 1, 3
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
_PIECE = 1 << 20  # values converted per struct call

# HF name (after "encoder.layer.N.") -> llama.cpp name (after "blk.N.")
_LAYER = {
    "attention.self.query": "attn_q",
    "attention.self.key": "attn_k",
    "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output",
    "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up",
    "output.dense": "ffn_down",
    "output.LayerNorm": "layer_output_norm",
}
_TOP = {
    "embeddings.word_embeddings": "token_embd",
    "embeddings.token_type_embeddings": "token_types",
    "embeddings.position_embeddings": "position_embd",
    "embeddings.LayerNorm": "token_embd_norm",
}
_KEEP_F32 = ("token_types", "position_embd")  # as llama.cpp's converter keeps them


def read_safetensors(path: Path) -> tuple[dict[str, Any], int]:
    with path.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header: dict[str, Any] = json.loads(f.read(size))
    header.pop("__metadata__", None)
    return header, 8 + size


def gguf_name(hf: str) -> str | None:
    """llama.cpp's tensor name for a HF BERT tensor; None for tensors it does not use."""
    hf = hf.removeprefix("bert.")
    stem, _, kind = hf.rpartition(".")
    if kind == "gamma":
        kind = "weight"
    elif kind == "beta":
        kind = "bias"
    if stem in _TOP:
        return f"{_TOP[stem]}.{kind}"
    if stem.startswith("encoder.layer."):
        rest = stem.removeprefix("encoder.layer.")
        block, _, part = rest.partition(".")
        if part in _LAYER:
            return f"blk.{int(block)}.{_LAYER[part]}.{kind}"
    return None  # position_ids, pooler


def phantom(token: str) -> str:
    if token.startswith("[") and token.endswith("]"):
        return token
    if token.startswith("##"):
        return token[2:]
    return "\u2581" + token


class _Writer:
    def __init__(self, out: BinaryIO) -> None:
        self.out = out

    def raw(self, data: bytes) -> None:
        self.out.write(data)

    def u32(self, v: int) -> None:
        self.raw(struct.pack("<I", v))

    def u64(self, v: int) -> None:
        self.raw(struct.pack("<Q", v))

    def string(self, s: str) -> None:
        data = s.encode("utf-8")
        self.u64(len(data))
        self.raw(data)

    def kv(self, key: str, vtype: int, value: Any) -> None:
        self.string(key)
        self.u32(vtype)
        self.value(vtype, value)

    def value(self, vtype: int, value: Any) -> None:
        if vtype == U32:
            self.u32(value)
        elif vtype == I32:
            self.raw(struct.pack("<i", value))
        elif vtype == F32:
            self.raw(struct.pack("<f", value))
        elif vtype == BOOL:
            self.raw(struct.pack("<?", value))
        elif vtype == STRING:
            self.string(value)
        else:
            raise ValueError(vtype)

    def array(self, key: str, vtype: int, values: list[Any]) -> None:
        self.string(key)
        self.u32(ARRAY)
        self.u32(vtype)
        self.u64(len(values))
        for v in values:
            self.value(vtype, v)


def _f16(values: array[float]) -> bytes:
    out = bytearray()
    for at in range(0, len(values), _PIECE):
        piece = values[at:at + _PIECE]
        out += struct.pack(f"<{len(piece)}e", *piece)
    return bytes(out)


def _padding(n: int) -> int:
    return (ALIGN - n % ALIGN) % ALIGN


def convert(model_dir: Path, out_path: Path, name: str) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    if vocab and vocab[-1] == "":
        vocab.pop()
    if len(vocab) != config["vocab_size"]:
        raise SystemExit(f"vocab.txt has {len(vocab)} tokens, config says {config['vocab_size']}")
    pooling = json.loads((model_dir / "1_Pooling" / "config.json").read_text())
    if not pooling.get("pooling_mode_mean_tokens"):
        raise SystemExit("only mean-pooled sentence-transformers models are converted")
    header, data_start = read_safetensors(model_dir / "model.safetensors")

    tensors: list[tuple[str, list[int], int, str]] = []  # gguf name, hf shape, type, hf name
    for hf in sorted(header):
        target = gguf_name(hf)
        if target is None:
            continue
        info = header[hf]
        if info["dtype"] != "F32":
            raise SystemExit(f"{hf}: dtype {info['dtype']} (expected F32)")
        shape = list(info["shape"])
        f16 = len(shape) == 2 and not target.startswith(_KEEP_F32)
        tensors.append((target, shape, T_F16 if f16 else T_F32, hf))
    tensors.sort(key=lambda t: t[0])

    ids = {tok: i for i, tok in enumerate(vocab)}
    with out_path.open("wb") as out:
        w = _Writer(out)
        w.raw(GGUF_MAGIC)
        w.u32(GGUF_VERSION)
        w.u64(len(tensors))
        kvs: list[tuple[str, int, Any]] = [
            ("general.architecture", STRING, "bert"),
            ("general.name", STRING, name),
            ("general.file_type", U32, FILE_TYPE_MOSTLY_F16),
            ("general.alignment", U32, ALIGN),
            ("bert.context_length", U32, config["max_position_embeddings"]),
            ("bert.embedding_length", U32, config["hidden_size"]),
            ("bert.feed_forward_length", U32, config["intermediate_size"]),
            ("bert.block_count", U32, config["num_hidden_layers"]),
            ("bert.attention.head_count", U32, config["num_attention_heads"]),
            ("bert.attention.layer_norm_epsilon", F32, config["layer_norm_eps"]),
            ("bert.attention.causal", BOOL, False),
            ("bert.pooling_type", U32, POOLING_MEAN),
            ("tokenizer.ggml.model", STRING, "bert"),
            ("tokenizer.ggml.token_type_count", U32, config.get("type_vocab_size", 1)),
            ("tokenizer.ggml.unknown_token_id", U32, ids["[UNK]"]),
            ("tokenizer.ggml.seperator_token_id", U32, ids["[SEP]"]),
            ("tokenizer.ggml.padding_token_id", U32, ids["[PAD]"]),
            ("tokenizer.ggml.cls_token_id", U32, ids["[CLS]"]),
            ("tokenizer.ggml.mask_token_id", U32, ids["[MASK]"]),
        ]
        w.u64(len(kvs) + 2)
        for key, vtype, value in kvs:
            w.kv(key, vtype, value)
        w.array("tokenizer.ggml.tokens", STRING, [phantom(t) for t in vocab])
        w.array("tokenizer.ggml.token_type", I32,
                [TOKEN_CONTROL if t in SPECIAL else TOKEN_NORMAL for t in vocab])
        offset = 0
        sizes = []
        for target, shape, ttype, _ in tensors:
            w.string(target)
            w.u32(len(shape))
            for dim in reversed(shape):  # ggml lists the innermost dimension first
                w.u64(dim)
            w.u32(ttype)
            w.u64(offset)
            count = 1
            for dim in shape:
                count *= dim
            size = count * (2 if ttype == T_F16 else 4)
            sizes.append(size)
            offset += size + _padding(size)
        w.raw(b"\0" * _padding(out.tell()))
        with (model_dir / "model.safetensors").open("rb") as src:
            for (_, _, ttype, hf), size in zip(tensors, sizes, strict=True):
                begin, end = header[hf]["data_offsets"]
                src.seek(data_start + begin)
                values = array("f")
                values.frombytes(src.read(end - begin))
                if sys.byteorder != "little":
                    values.byteswap()
                data = _f16(values) if ttype == T_F16 else struct.pack(
                    f"<{len(values)}f", *values)
                assert len(data) == size
                w.raw(data + b"\0" * _padding(size))

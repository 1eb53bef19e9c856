"""Test-only GGUF writer: headers (metadata + tensor table) with no real weights.

The data section is left as a sparse hole by default, so a "45 GB" model header costs a few KB
of disk and the file still has its realistic size::

    write_gguf(tmp_path / "m.gguf",
               {"general.architecture": "qwen3", "qwen3.block_count": 40,
                "tokenizer.ggml.tokens": ArrayInfo(STRING, 151936)},   # 151936 empty strings
               [Tensor("token_embd.weight", (5120, 151936), GGML_TYPE_IDS["Q4_K"]), ...])

Python values map to GGUF types as: bool -> BOOL, int -> UINT32 (INT32/UINT64/INT64 when out of
range), float -> FLOAT32, str -> STRING, list/tuple -> ARRAY (ints as INT32/INT64), ArrayInfo ->
an array of that length filled with zeros / empty strings. Use Typed(...) for an exact type.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Literal

from app.catalog.ggml_types import tensor_nbytes
from app.catalog.gguf import ArrayInfo

UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY = range(10)
UINT64, INT64, FLOAT64 = 10, 11, 12
FORMATS = MappingProxyType({
    UINT8: "B", INT8: "b", UINT16: "H", INT16: "h", UINT32: "I", INT32: "i",
    FLOAT32: "f", BOOL: "?", UINT64: "Q", INT64: "q", FLOAT64: "d",
})  # fmt: skip

Metadata = Mapping[str, object] | Iterable[tuple[str, object]]


@dataclass(frozen=True)
class Typed:
    """A metadata value with an explicit GGUF value type (`item_type` for arrays)."""

    vtype: int
    value: object
    item_type: int | None = None


@dataclass(frozen=True)
class Tensor:
    """A tensor-info entry; `shape` in ggml order (ne[0] first)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int

    @property
    def n_bytes(self) -> int:
        """Size of its data."""
        n = 1
        for d in self.shape:
            n *= d
        return tensor_nbytes(self.ggml_type, n)


@dataclass(frozen=True)
class Layout:
    """An encoded header and where its tensors would go."""

    header: bytes
    data_offset: int
    offsets: tuple[int, ...]  # relative to data_offset
    data_size: int


def encode_string(s: str | bytes) -> bytes:
    """u64 length + bytes."""
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def _int_type(values: Sequence[int], scalar: bool) -> int:
    lo, hi = min(values, default=0), max(values, default=0)
    if scalar and lo >= 0:
        return UINT32 if hi < 2**32 else UINT64
    return INT32 if lo >= -(2**31) and hi < 2**31 else INT64


def infer(value: object) -> Typed:
    """The GGUF type a Python value is written as."""
    if isinstance(value, Typed):
        return value
    if isinstance(value, bool):
        return Typed(BOOL, value)
    if isinstance(value, int):
        return Typed(_int_type([value], scalar=True), value)
    if isinstance(value, float):
        return Typed(FLOAT32, value)
    if isinstance(value, str | bytes):
        return Typed(STRING, value)
    if isinstance(value, ArrayInfo):
        return Typed(ARRAY, value, value.item_type)
    if isinstance(value, list | tuple):
        return Typed(ARRAY, value, _item_type(value))
    raise TypeError(f"cannot encode {type(value).__name__} as a GGUF value")


def _item_type(items: Sequence[object]) -> int:
    if not items:
        return INT32
    first = items[0]
    if isinstance(first, bool):
        return BOOL
    if isinstance(first, int):
        return _int_type([int(x) for x in items if isinstance(x, int)], scalar=False)
    return infer(first).vtype


def encode_payload(t: Typed) -> bytes:
    """A value's bytes, without its leading u32 value type."""
    if t.vtype == STRING:
        assert isinstance(t.value, str | bytes)
        return encode_string(t.value)
    if t.vtype != ARRAY:
        return struct.pack("<" + FORMATS[t.vtype], t.value)
    value = t.value
    if isinstance(value, ArrayInfo):
        item_type, n = value.item_type, value.length
        if item_type == ARRAY:
            body = struct.pack("<IQ", UINT8, 0) * n  # n empty u8 arrays
        else:  # zeros, or empty strings (a zero u64 length each)
            body = bytes((8 if item_type == STRING else struct.calcsize(FORMATS[item_type])) * n)
        return struct.pack("<IQ", item_type, n) + body
    assert isinstance(value, list | tuple)
    item_type = _item_type(value) if t.item_type is None else t.item_type
    if item_type == STRING:
        body = b"".join(encode_string(x) for x in value)
    elif item_type == ARRAY:
        body = b"".join(encode_payload(infer(x)) for x in value)
    else:
        body = struct.pack(f"<{len(value)}{FORMATS[item_type]}", *value)
    return struct.pack("<IQ", item_type, len(value)) + body


def encode_kv(key: str | bytes, value: object) -> bytes:
    """One metadata entry: key, value type, value."""
    t = infer(value)
    return encode_string(key) + struct.pack("<I", t.vtype) + encode_payload(t)


def encode_tensor_info(name: str, shape: Sequence[int], ggml_type: int, offset: int) -> bytes:
    """One tensor-info entry."""
    dims = struct.pack(f"<I{len(shape)}Q", len(shape), *shape)
    return encode_string(name) + dims + struct.pack("<IQ", ggml_type, offset)


def _align(n: int, alignment: int) -> int:
    return -(-n // alignment) * alignment


def build_header(
    metadata: Metadata,
    tensors: Sequence[Tensor],
    *,
    version: int = 3,
    magic: bytes = b"GGUF",
    n_kv: int | None = None,
    n_tensors: int | None = None,
) -> Layout:
    """Encode a header; tensors are laid out back to back at `general.alignment` (default 32)."""
    items = list(metadata.items() if isinstance(metadata, Mapping) else metadata)
    alignment = 32
    for key, value in items:
        v = value.value if isinstance(value, Typed) else value
        if key == "general.alignment" and isinstance(v, int) and v > 0 and not v & (v - 1):
            alignment = v  # an invalid alignment is written as given but laid out at 32
    offsets, pos = [], 0
    for t in tensors:
        offsets.append(pos)
        pos = _align(pos + t.n_bytes, alignment)
    counts = struct.pack(
        "<IQQ",
        version,
        len(tensors) if n_tensors is None else n_tensors,
        len(items) if n_kv is None else n_kv,
    )
    header = b"".join(
        [magic, counts]
        + [encode_kv(k, v) for k, v in items]
        + [
            encode_tensor_info(t.name, t.shape, t.ggml_type, o)
            for t, o in zip(tensors, offsets, strict=True)
        ]
    )
    data_size = offsets[-1] + tensors[-1].n_bytes if tensors else 0
    return Layout(header, _align(len(header), alignment), tuple(offsets), data_size)


def write_gguf(
    path: Path,
    metadata: Metadata,
    tensors: Sequence[Tensor] = (),
    *,
    data: Literal["sparse", "header", "none"] = "sparse",
    version: int = 3,
) -> Path:
    """Write a GGUF file. data: "sparse" = full size with the data as a hole, "header" = padded
    up to the data section only, "none" = the header bytes and nothing else."""
    layout = build_header(metadata, tensors, version=version)
    with path.open("wb") as f:
        f.write(layout.header)
        if data != "none":
            f.truncate(layout.data_offset + (layout.data_size if data == "sparse" else 0))
    return path


def write_split(
    prefix: Path,
    metadata: Metadata,
    tensors: Sequence[Tensor],
    n_shards: int,
    *,
    data: Literal["sparse", "header", "none"] = "sparse",
) -> list[Path]:
    """Write `{prefix}-0000i-of-0000N.gguf` like llama-gguf-split: all metadata in shard 0, the
    split.* keys in every shard, the tensors divided into `n_shards` contiguous runs."""
    items = list(metadata.items() if isinstance(metadata, Mapping) else metadata)
    per = -(-len(tensors) // n_shards)
    paths = []
    for i in range(n_shards):
        split: list[tuple[str, object]] = [
            ("split.no", Typed(UINT16, i)),
            ("split.count", Typed(UINT16, n_shards)),
            ("split.tensors.count", Typed(INT32, len(tensors))),
        ]
        path = prefix.with_name(f"{prefix.name}-{i + 1:05d}-of-{n_shards:05d}.gguf")
        shard_tensors = tensors[i * per : (i + 1) * per]
        paths.append(write_gguf(path, (items if i == 0 else []) + split, shard_tensors, data=data))
    return paths

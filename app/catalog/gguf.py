"""Safe, fast reader for GGUF headers (metadata KVs + tensor-info table); never reads weights.

The file is untrusted input: every count is checked against the bytes left in the file before
anything is looped over or allocated, strings and array nesting are capped, and the header is
read through a bounded chunked buffer. Long arrays (vocab, merges, scores) are skipped, not loaded.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO, Generic, TypeVar, overload

from app.catalog.ggml_types import GGML_TYPES

GGUF_MAGIC = b"GGUF"
SUPPORTED_VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
MAX_DIMS = 4  # GGML_MAX_DIMS; llama.cpp rejects more
MAX_NAME_LEN = 65535  # keys and tensor names
MAX_STRING_LEN = 1 << 24  # one metadata string value (chat templates are a few KiB)
MAX_ARRAY_DEPTH = 3  # at most an array of arrays of arrays
MAX_NUMERIC_ITEMS = 4096  # numeric/bool arrays up to this length are kept as tuples
MAX_STRING_ITEMS = 64  # string arrays up to this length are kept as tuples
# string arrays / arrays of arrays must be walked item by item: cap their length so that a bogus
# count over a zero-filled region (sparse or preallocated file) cannot keep us busy for minutes.
# Real vocabularies and merge lists have < 1M entries.
MAX_WALK_ITEMS = 1 << 22
_CHUNK = 1 << 20
_INT64_MAX = (1 << 63) - 1

T_STRING, T_ARRAY = 8, 9
# GGUF value type -> struct format of one item (strings and arrays are variable-sized)
_FORMATS: Mapping[int, str] = MappingProxyType(
    {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
)
_STRUCTS: Mapping[int, struct.Struct] = MappingProxyType(
    {t: struct.Struct("<" + f) for t, f in _FORMATS.items()}
)
# least encoded size of one array item: a string is >= its u64 length, an array its type + length
_MIN_ITEM: Mapping[int, int] = MappingProxyType(
    {**{t: s.size for t, s in _STRUCTS.items()}, T_STRING: 8, T_ARRAY: 12}
)
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
T = TypeVar("T")


class GGUFError(Exception):
    """A GGUF file is unreadable or malformed; the message names the file and byte offset."""

    def __init__(self, message: str, *, path: Path | None = None, offset: int | None = None):
        self.path = path
        self.offset = offset
        where = f"{path}: " if path is not None else ""
        at = f" (at byte offset {offset})" if offset is not None else ""
        super().__init__(f"{where}{message}{at}")


@dataclass(frozen=True)
class ArrayInfo:
    """A metadata array that was skipped rather than loaded."""

    item_type: int
    length: int


@dataclass(frozen=True)
class TensorInfo:
    """One entry of the tensor-info table; `shape` is in ggml order (ne[0] first)."""

    name: str
    shape: tuple[int, ...]
    ggml_type: int
    offset: int  # relative to the data section
    n_bytes: int

    @property
    def n_elements(self) -> int:
        """Number of elements."""
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def type_name(self) -> str:
        """ggml type name, e.g. "Q4_K"."""
        return GGML_TYPES[self.ggml_type].name


def _int(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _ints(v: object) -> int | tuple[int, ...] | None:
    if isinstance(v, tuple) and all(_int(x) is not None for x in v):
        return v
    return _int(v)


def _pattern(v: object) -> int | tuple[bool, ...] | None:
    if isinstance(v, tuple) and all(isinstance(x, bool) for x in v):
        return v
    return _int(v)


class _Key(Generic[T]):
    """Read-only attribute: metadata `key` ("{arch}." is replaced by the architecture prefix)."""

    def __init__(self, key: str, conv: Callable[[object], T]) -> None:
        self.key, self.conv = key, conv

    @overload
    def __get__(self, obj: None, owner: type) -> _Key[T]: ...
    @overload
    def __get__(self, obj: GGUFInfo, owner: type) -> T: ...
    def __get__(self, obj: GGUFInfo | None, owner: type) -> _Key[T] | T:
        if obj is None:
            return self
        key = self.key
        if key.startswith("{arch}."):
            arch = _str(obj.metadata.get("general.architecture"))
            if arch is None:
                return self.conv(None)
            key = arch + key[6:]
        return self.conv(obj.metadata.get(key))


@dataclass(frozen=True)
class GGUFInfo:
    """The header of one GGUF file plus typed views of the common metadata keys."""

    path: Path
    version: int
    metadata: Mapping[str, object]
    tensors: tuple[TensorInfo, ...]
    data_offset: int  # absolute offset of the tensor data section
    file_size: int

    def __post_init__(self) -> None:
        if not isinstance(self.metadata, MappingProxyType):  # read-only even if built by hand
            object.__setattr__(self, "metadata", MappingProxyType(dict(self.metadata)))

    def __hash__(self) -> int:
        return hash((self.path, self.version, self.tensors, self.data_offset, self.file_size))

    def __reduce__(self) -> tuple[object, ...]:  # a mappingproxy cannot be pickled as such
        args = (self.path, self.version, dict(self.metadata), self.tensors)
        return (GGUFInfo, (*args, self.data_offset, self.file_size))

    architecture = _Key("general.architecture", _str)
    name = _Key("general.name", _str)
    file_type = _Key("general.file_type", _int)
    chat_template = _Key("tokenizer.chat_template", _str)
    split_no = _Key("split.no", _int)
    split_count = _Key("split.count", _int)
    split_tensors_count = _Key("split.tensors.count", _int)
    context_length = _Key("{arch}.context_length", _int)
    block_count = _Key("{arch}.block_count", _int)
    embedding_length = _Key("{arch}.embedding_length", _int)
    feed_forward_length = _Key("{arch}.feed_forward_length", _ints)
    nextn_predict_layers = _Key("{arch}.nextn_predict_layers", _int)
    head_count = _Key("{arch}.attention.head_count", _ints)
    head_count_kv = _Key("{arch}.attention.head_count_kv", _ints)
    key_length = _Key("{arch}.attention.key_length", _int)
    value_length = _Key("{arch}.attention.value_length", _int)
    key_length_swa = _Key("{arch}.attention.key_length_swa", _int)
    value_length_swa = _Key("{arch}.attention.value_length_swa", _int)
    kv_lora_rank = _Key("{arch}.attention.kv_lora_rank", _int)
    sliding_window = _Key("{arch}.attention.sliding_window", _int)
    sliding_window_pattern = _Key("{arch}.attention.sliding_window_pattern", _pattern)
    full_attention_interval = _Key("{arch}.full_attention_interval", _int)
    ssm_conv_kernel = _Key("{arch}.ssm.conv_kernel", _int)
    ssm_inner_size = _Key("{arch}.ssm.inner_size", _int)
    ssm_state_size = _Key("{arch}.ssm.state_size", _int)
    ssm_group_count = _Key("{arch}.ssm.group_count", _int)
    expert_count = _Key("{arch}.expert_count", _int)
    expert_used_count = _Key("{arch}.expert_used_count", _int)
    expert_shared_count = _Key("{arch}.expert_shared_count", _int)
    pooling_type = _Key("{arch}.pooling_type", _int)

    @property
    def vocab_size(self) -> int | None:
        """Length of `tokenizer.ggml.tokens`, else `{arch}.vocab_size`."""
        tokens = self.metadata.get("tokenizer.ggml.tokens")
        if isinstance(tokens, ArrayInfo):
            return tokens.length
        if isinstance(tokens, tuple):
            return len(tokens)
        arch = self.architecture
        return None if arch is None else _int(self.metadata.get(f"{arch}.vocab_size"))

    @property
    def tensor_bytes(self) -> int:
        """Sum of the tensors' sizes in this file."""
        return sum(t.n_bytes for t in self.tensors)

    @property
    def data_end(self) -> int:
        """Absolute offset just past the last tensor's data (the file should be this long)."""
        return self.data_offset + max((t.offset + t.n_bytes for t in self.tensors), default=0)

    @property
    def truncated(self) -> bool:
        """True when the file is shorter than its tensor table says (e.g. partial download)."""
        return self.file_size < self.data_end


class _Reader:
    """Bounded chunked reader: holds at most max(_CHUNK, one capped string) bytes."""

    def __init__(self, f: BinaryIO, size: int, path: Path) -> None:
        self.f, self.size, self.path = f, size, path
        self.buf, self.start, self.pos = b"", 0, 0

    def error(self, msg: str, offset: int | None = None) -> GGUFError:
        return GGUFError(msg, path=self.path, offset=self.pos if offset is None else offset)

    def room(self, n: int, what: str) -> None:
        """Raise unless `n` bytes remain in the file at the current position."""
        if n > self.size - self.pos:
            left = self.size - self.pos
            raise self.error(f"truncated or corrupt: {what} needs {n} bytes, {left} left")

    def take(self, n: int, what: str) -> int:
        """Consume `n` bytes; return their index in `self.buf`."""
        rel = self.pos - self.start
        if rel + n > len(self.buf):
            self.room(n, what)
            self.f.seek(self.pos)
            self.buf, self.start, rel = self.f.read(max(n, _CHUNK)), self.pos, 0
            if len(self.buf) < n:
                raise self.error(f"file shrank while reading {what}")
        self.pos += n
        return rel

    def unpack(self, st: struct.Struct, what: str) -> Any:
        i = self.take(st.size, what)  # may replace self.buf
        return st.unpack_from(self.buf, i)[0]

    def string(self, what: str, limit: int, strict: bool = True) -> str:
        n: int = self.unpack(_U64, f"{what} length")
        if n > limit:
            raise self.error(f"{what} length {n} exceeds limit {limit}", self.pos - 8)
        i = self.take(n, what)
        try:
            return self.buf[i : i + n].decode("utf-8", "strict" if strict else "replace")
        except UnicodeDecodeError as e:
            raise self.error(f"{what} is not valid UTF-8", self.pos - n) from e

    def skip_strings(self, count: int) -> None:
        """Walk `count` strings by their u64 lengths without decoding them."""
        buf, start, pos, size, unpack = self.buf, self.start, self.pos, self.size, _U64.unpack_from
        for _ in range(count):
            if pos + 8 - start > len(buf):
                self.pos = pos
                self.take(8, "string length")  # refills the buffer at `pos`
                buf, start = self.buf, self.start
            (n,) = unpack(buf, pos - start)
            pos += 8 + n
            if pos > size:
                raise self.error(f"truncated or corrupt: {n}-byte string past EOF", pos - n - 8)
        self.pos = pos


def _value(r: _Reader, vtype: int, depth: int) -> object:
    if vtype == T_STRING:
        return r.string("string value", MAX_STRING_LEN, strict=False)
    if vtype == T_ARRAY:
        return _array(r, depth + 1)
    st = _STRUCTS.get(vtype)
    if st is None:
        raise r.error(f"unknown value type {vtype}", r.pos - 4)
    return r.unpack(st, "value")


def _array(r: _Reader, depth: int) -> object:
    at = r.pos
    itype: int = r.unpack(_U32, "array item type")
    n: int = r.unpack(_U64, "array length")
    if itype not in _MIN_ITEM:
        raise r.error(f"unknown array item type {itype}", at)
    if itype == T_ARRAY and depth >= MAX_ARRAY_DEPTH:
        raise r.error(f"arrays nested deeper than {MAX_ARRAY_DEPTH}", at)
    r.room(n * _MIN_ITEM[itype], f"array of {n} items of type {itype}")
    if n > MAX_WALK_ITEMS and itype in (T_STRING, T_ARRAY):
        raise r.error(f"array of {n} strings/arrays is too long (max {MAX_WALK_ITEMS})", at)
    if itype == T_STRING:
        if n <= MAX_STRING_ITEMS:
            return tuple(r.string("string item", MAX_STRING_LEN, strict=False) for _ in range(n))
        r.skip_strings(n)
    elif itype == T_ARRAY:
        for _ in range(n):
            _array(r, depth + 1)
    elif n <= MAX_NUMERIC_ITEMS:
        i = r.take(n * _MIN_ITEM[itype], "array")
        return struct.unpack_from(f"<{n}{_FORMATS[itype]}", r.buf, i)
    else:
        r.pos += n * _MIN_ITEM[itype]  # room() above checked it fits
    return ArrayInfo(itype, n)


def _parse(r: _Reader) -> GGUFInfo:
    i = r.take(4, "magic")
    magic = r.buf[i : i + 4]
    if magic != GGUF_MAGIC:
        raise r.error(f"not a GGUF file (magic {magic!r}, expected {GGUF_MAGIC!r})", 0)
    version: int = r.unpack(_U32, "version")
    if version not in SUPPORTED_VERSIONS:
        swapped = int.from_bytes(version.to_bytes(4, "little"), "big")
        why = "big-endian GGUF is" if swapped in (1, 2, 3) else f"GGUF version {version} is"
        raise r.error(f"{why} not supported (supported: v2, v3 little-endian)", 4)
    n_tensors: int = r.unpack(_U64, "tensor count")
    n_kv: int = r.unpack(_U64, "metadata count")
    # each KV needs >= 13 bytes (key length, type, 1-byte value); each tensor info >= 24
    r.room(n_kv * 13 + n_tensors * 24, f"{n_kv} metadata entries and {n_tensors} tensor infos")
    metadata: dict[str, object] = {}
    for _ in range(n_kv):
        at = r.pos
        key = r.string("metadata key", MAX_NAME_LEN)
        if key in metadata:
            raise r.error(f"duplicate metadata key {key!r}", at)
        metadata[key] = _value(r, r.unpack(_U32, "value type"), 0)
    alignment = _int(metadata.get("general.alignment", DEFAULT_ALIGNMENT))
    if alignment is None or alignment <= 0 or alignment & (alignment - 1):
        got = metadata.get("general.alignment")
        raise r.error(f"general.alignment must be a power of two, got {got!r}")
    tensors: list[TensorInfo] = []
    names: set[str] = set()
    for _ in range(n_tensors):
        at = r.pos
        name = r.string("tensor name", MAX_NAME_LEN)
        if name in names:
            raise r.error(f"duplicate tensor name {name!r}", at)
        names.add(name)
        n_dims: int = r.unpack(_U32, "tensor n_dims")
        if n_dims > MAX_DIMS:
            raise r.error(f"tensor {name!r} has {n_dims} dimensions (max {MAX_DIMS})", r.pos - 4)
        i = r.take(8 * n_dims, "tensor dims")
        shape = struct.unpack_from(f"<{n_dims}Q", r.buf, i)
        n_elements = 1
        for d in shape:
            n_elements *= d
            if n_elements > _INT64_MAX:
                raise r.error(f"tensor {name!r} shape {shape} overflows int64", r.pos - 8 * n_dims)
        ggml_type: int = r.unpack(_U32, "tensor type")
        gt = GGML_TYPES.get(ggml_type)
        if gt is None:
            raise r.error(f"tensor {name!r} has unknown ggml type {ggml_type}", r.pos - 4)
        if shape and shape[0] % gt.block_elems:
            raise r.error(f"tensor {name!r}: ne[0]={shape[0]} not a multiple of {gt.block_elems}")
        offset: int = r.unpack(_U64, "tensor offset")
        if offset % alignment:
            raise r.error(f"tensor {name!r} offset {offset} not aligned to {alignment}", r.pos - 8)
        n_bytes = n_elements // gt.block_elems * gt.block_bytes
        tensors.append(TensorInfo(name, shape, ggml_type, offset, n_bytes))
    data_offset = -(-r.pos // alignment) * alignment
    return GGUFInfo(
        r.path, version, MappingProxyType(metadata), tuple(tensors), data_offset, r.size
    )


def read_gguf(path: Path) -> GGUFInfo:
    """Read the header of one GGUF file (GGUFError if unreadable or malformed)."""
    path = Path(path)
    try:
        with path.open("rb") as f:
            return parse_gguf(f, os.fstat(f.fileno()).st_size, path)
    except OSError as e:
        raise GGUFError(f"cannot read: {e.strerror or e}", path=path) from e


def parse_gguf(f: BinaryIO, size: int, path: Path) -> GGUFInfo:
    """Read a GGUF header from any seekable binary stream of `size` bytes (e.g. HTTP ranges);
    `path` names it in errors and in the result."""
    return _parse(_Reader(f, size, path))

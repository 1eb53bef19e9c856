"""Malformed and hostile GGUF files: each must raise GGUFError quickly and in bounded memory."""

from __future__ import annotations

import random
import struct
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.catalog.gguf import GGUFError, read_gguf
from tests.gguf_writer import (
    ARRAY,
    INT32,
    STRING,
    UINT8,
    UINT32,
    Tensor,
    Typed,
    build_header,
    encode_kv,
    encode_string,
    encode_tensor_info,
    write_gguf,
)

MAX_SECONDS = 0.5
MAX_PEAK_BYTES = 4 << 20  # 4 MiB; the reader's chunk is 1 MiB
F32, Q4_K = 0, 12


def head(n_tensors: int, n_kv: int, version: int = 3, magic: bytes = b"GGUF") -> bytes:
    return magic + struct.pack("<IQQ", version, n_tensors, n_kv)


def kv_raw(key: str, vtype: int, payload: bytes) -> bytes:
    return encode_string(key) + struct.pack("<I", vtype) + payload


@contextmanager
def bounded_memory(max_peak: int = MAX_PEAK_BYTES) -> Iterator[None]:
    """The block allocates < `max_peak` bytes at its peak (tracemalloc)."""
    tracemalloc.start()
    try:
        yield
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak < max_peak, f"peak allocation {peak} bytes"


def expect_error(path: Path, match: str) -> GGUFError:
    """read_gguf(path) raises a GGUFError matching `match`, fast and in bounded memory."""
    start = time.perf_counter()
    with pytest.raises(GGUFError, match=match) as exc:
        read_gguf(path)
    elapsed = time.perf_counter() - start
    assert elapsed < MAX_SECONDS, f"took {elapsed:.3f} s"
    with bounded_memory(), pytest.raises(GGUFError, match=match):
        read_gguf(path)
    assert str(path) in str(exc.value)
    assert "byte offset" in str(exc.value)
    return exc.value


# --- truncation of a real header -------------------------------------------------------------


@pytest.fixture(scope="module")
def smol_header(smollm_path: Path) -> bytes:
    """The real SmolLM2 header up to (not including) the tensor data."""
    info = read_gguf(smollm_path)
    with smollm_path.open("rb") as f:
        return f.read(info.data_offset)


def _truncation_offsets(header_len: int) -> list[int]:
    end = header_len - 32  # the metadata + tensor table end within the last alignment step
    spread = [64 + i * (end - 64) // 50 for i in range(50)]
    tensor_table = [end - i * 257 for i in range(1, 21)]  # the table is the last ~15 KB
    return sorted(set(range(64)) | set(spread) | set(tensor_table) | {end - 1})


def test_truncated_real_header_everywhere(tmp_path: Path, smol_header: bytes) -> None:
    offsets = _truncation_offsets(len(smol_header))
    assert len(offsets) > 120
    path = tmp_path / "cut.gguf"
    for cut in offsets:
        path.write_bytes(smol_header[:cut])
        start = time.perf_counter()
        with pytest.raises(GGUFError, match="truncated|not a GGUF") as exc:
            read_gguf(path)
        assert time.perf_counter() - start < MAX_SECONDS, cut
        assert exc.value.offset is not None
        assert exc.value.offset <= cut, (cut, str(exc.value))


def test_truncated_data_section_is_reported_not_raised(tmp_path: Path, smol_header: bytes) -> None:
    path = tmp_path / "partial.gguf"
    path.write_bytes(smol_header + bytes(1000))
    info = read_gguf(path)
    assert info.truncated
    assert info.file_size == len(smol_header) + 1000
    assert len(info.tensors) == 272


def test_truncated_header_in_bounded_memory(tmp_path: Path, smol_header: bytes) -> None:
    path = tmp_path / "cut.gguf"
    path.write_bytes(smol_header[: len(smol_header) // 2])  # inside the tokenizer arrays
    expect_error(path, "truncated")


# --- file-level garbage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "truncated"),
        (b"GGU", "truncated"),
        (b"GGUF\x03\x00", "truncated"),
        (b"\x00" * 100, "not a GGUF file"),
        (b"GGML" + bytes(100), "not a GGUF file"),
        (head(0, 0, magic=b"FUGG"), "not a GGUF file"),
        (b"GGUF" + struct.pack(">IQQ", 3, 0, 0), "big-endian"),
        (b"GGUF" + struct.pack(">IQQ", 2, 0, 0), "big-endian"),
        (head(0, 0, version=1), "version 1 is not supported"),
        (head(0, 0, version=4), "version 4 is not supported"),
        (head(0, 0, version=0xFFFFFFFF), "not supported"),
    ],
)
def test_bad_magic_and_version(tmp_path: Path, data: bytes, match: str) -> None:
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    expect_error(path, match)


def test_empty_but_valid_header(tmp_path: Path) -> None:
    path = tmp_path / "empty.gguf"
    path.write_bytes(head(0, 0))
    info = read_gguf(path)
    assert (info.metadata, info.tensors, info.data_offset) == ({}, (), 32)


# --- hostile counts and lengths --------------------------------------------------------------

HUGE_CASES = {
    "n_tensors 2**63": (head(2**63, 0), "tensor infos"),
    "n_tensors max": (head(2**64 - 1, 0) + bytes(64), "tensor infos"),
    "n_kv huge": (head(0, 2**62) + bytes(64), "metadata entries"),
    "n_kv slightly too big": (
        head(0, 10) + b"".join(encode_kv(f"k{i}", 1) for i in range(9)),
        "truncated",
    ),
    "key length huge": (head(0, 1) + struct.pack("<Q", 2**63) + bytes(16), "key length"),
    "key length past EOF": (head(0, 1) + struct.pack("<Q", 1000) + bytes(100), "truncated"),
    "string value huge": (
        head(0, 1) + kv_raw("k", STRING, struct.pack("<Q", 2**40)) + bytes(16),
        "string value length",
    ),
    "string value past EOF": (
        head(0, 1) + kv_raw("k", STRING, struct.pack("<Q", 500)) + bytes(16),
        "truncated",
    ),
    "numeric array huge": (
        head(0, 1) + kv_raw("k", ARRAY, struct.pack("<IQ", UINT32, 2**61)) + bytes(64),
        "array of",
    ),
    "u8 array one too long": (
        head(0, 1) + kv_raw("k", ARRAY, struct.pack("<IQ", UINT8, 65)) + bytes(64),
        "array of",
    ),
    "string array huge": (
        head(0, 1) + kv_raw("k", ARRAY, struct.pack("<IQ", STRING, 2**60)) + bytes(64),
        "array of",
    ),
    "long string array runs past EOF": (
        head(0, 1)
        + kv_raw("k", ARRAY, struct.pack("<IQ", STRING, 100))
        + encode_string("abc") * 99
        + struct.pack("<Q", 10**6),
        "string past EOF",
    ),
    "short string array item huge": (
        head(0, 1)
        + kv_raw("k", ARRAY, struct.pack("<IQ", STRING, 2) + struct.pack("<Q", 2**50))
        + bytes(64),
        "string item length",
    ),
    "array of arrays huge": (
        head(0, 1) + kv_raw("k", ARRAY, struct.pack("<IQ", ARRAY, 2**62)) + bytes(64),
        "array of",
    ),
    "arrays nested too deep": (
        head(0, 1) + kv_raw("k", ARRAY, struct.pack("<IQ", ARRAY, 1) * 4) + bytes(64),
        "nested deeper",
    ),
    "n_dims 1000": (head(1, 0) + encode_string("t") + struct.pack("<I", 1000) + bytes(64), "1000"),
    "n_dims 5": (head(1, 0) + encode_tensor_info("t", (32, 1, 1, 1, 1), F32, 0), "5 dimensions"),
    "dims overflow": (
        head(1, 0) + encode_tensor_info("t", (2**40, 2**40), F32, 0),
        "overflows int64",
    ),
    "dim u64 max": (head(1, 0) + encode_tensor_info("t", (2**64 - 1,), F32, 0), "overflows"),
    "tensor name huge": (head(1, 0) + struct.pack("<Q", 2**64 - 1) + bytes(64), "tensor name"),
}


@pytest.mark.parametrize("case", list(HUGE_CASES))
def test_huge_counts_fail_fast_in_bounded_memory(tmp_path: Path, case: str) -> None:
    data, match = HUGE_CASES[case]
    path = tmp_path / "huge.gguf"
    path.write_bytes(data)
    expect_error(path, match)


def test_zero_filled_file_cannot_stall_the_string_walk(tmp_path: Path) -> None:
    """Zeros (a sparse or preallocated download) read as empty strings; a bogus count over them
    must not make the reader walk a billion of them."""
    path = tmp_path / "big.gguf"
    with path.open("wb") as f:
        f.write(head(0, 1) + kv_raw("k", ARRAY, struct.pack("<IQ", STRING, 2**29)))
        f.truncate(2**33)  # 8 GiB, sparse: 2**29 empty strings "fit"
    expect_error(path, "too long")
    for n_tensors, n_kv, what in [(2**20, 0, "tensor name"), (0, 2**20, "metadata key")]:
        with path.open("wb") as f:  # zero-filled table: its second entry duplicates the first
            f.write(head(n_tensors, n_kv))
            f.truncate(2**33)
        expect_error(path, f"duplicate {what} ''")


# --- unknown types and inconsistent values ---------------------------------------------------


def _tensor_file(tmp_path: Path, *tensor_infos: bytes) -> Path:
    path = tmp_path / "t.gguf"
    path.write_bytes(head(len(tensor_infos), 0) + b"".join(tensor_infos) + bytes(64))
    return path


@pytest.mark.parametrize("vtype", [13, 255, 2**31, 2**32 - 1])
def test_unknown_value_type(tmp_path: Path, vtype: int) -> None:
    path = tmp_path / "v.gguf"
    path.write_bytes(head(0, 1) + kv_raw("key", vtype, bytes(16)))
    err = expect_error(path, f"unknown value type {vtype}")
    assert err.offset == 24 + 8 + 3  # header, key length, key


def test_unknown_array_item_type(tmp_path: Path) -> None:
    path = tmp_path / "a.gguf"
    path.write_bytes(head(0, 1) + kv_raw("key", ARRAY, struct.pack("<IQ", 13, 1)) + bytes(16))
    expect_error(path, "unknown array item type 13")


@pytest.mark.parametrize("ggml_type", [4, 5, 31, 36, 38, 42, 99, 2**32 - 1])
def test_unknown_ggml_type(tmp_path: Path, ggml_type: int) -> None:
    path = _tensor_file(tmp_path, encode_tensor_info("w", (32, 4), ggml_type, 0))
    err = expect_error(path, f"unknown ggml type {ggml_type}")
    assert err.offset == 24 + 8 + 1 + 4 + 16  # header, name, n_dims, dims


def test_row_not_a_multiple_of_block_size(tmp_path: Path) -> None:
    path = _tensor_file(tmp_path, encode_tensor_info("w", (100, 4), Q4_K, 0))
    expect_error(path, "not a multiple of 256")


def test_misaligned_tensor_offset(tmp_path: Path) -> None:
    path = _tensor_file(tmp_path, encode_tensor_info("w", (32,), F32, 16))
    expect_error(path, "not aligned to 32")


def test_duplicate_key_and_tensor(tmp_path: Path) -> None:
    path = tmp_path / "d.gguf"
    path.write_bytes(build_header([("a", 1), ("a", 2)], []).header)
    expect_error(path, "duplicate metadata key 'a'")
    info = encode_tensor_info("w", (32,), F32, 0)
    expect_error(_tensor_file(tmp_path, info, info), "duplicate tensor name 'w'")


@pytest.mark.parametrize("alignment", [0, 3, 48, -32, "32", True])
def test_bad_alignment(tmp_path: Path, alignment: object) -> None:
    value = Typed(INT32, alignment) if alignment == -32 else alignment
    path = write_gguf(tmp_path / "al.gguf", {"general.alignment": value})
    expect_error(path, "general.alignment")


def test_invalid_utf8(tmp_path: Path) -> None:
    path = tmp_path / "u.gguf"
    path.write_bytes(head(0, 1) + encode_string(b"k\xff") + struct.pack("<II", UINT32, 1))
    expect_error(path, "not valid UTF-8")
    # invalid UTF-8 in a value is replaced, not fatal (llama.cpp would load such a file)
    path.write_bytes(
        head(0, 1) + encode_string(b"k") + struct.pack("<I", STRING) + encode_string(b"v\xff")
    )
    assert read_gguf(path).metadata["k"] == "v\ufffd"


# --- random corruption ------------------------------------------------------------------------


def test_random_corruption_only_raises_gguf_error(tmp_path: Path) -> None:
    md = {
        "general.architecture": "llama",
        "llama.block_count": 2,
        "tokenizer.ggml.tokens": [f"tok{i}" for i in range(200)],
        "tokenizer.ggml.scores": [0.5] * 100,
        "nested": [[1, 2], ["a"]],
    }
    tensors = [Tensor(f"blk.{i}.w", (256, 2), Q4_K) for i in range(5)]
    good = build_header(md, tensors).header
    rng = random.Random(1234)
    path = tmp_path / "fuzz.gguf"
    ok = failed = 0
    for _ in range(400):
        data = bytearray(good)
        for _ in range(rng.randint(1, 4)):
            pos = rng.randrange(len(data))
            if rng.random() < 0.5:
                data[pos] = rng.randrange(256)
            else:  # plant a big little-endian number
                data[pos : pos + 8] = struct.pack("<Q", rng.choice([2**32 - 1, 2**63, 2**64 - 1]))
        path.write_bytes(bytes(data[: rng.randint(len(data) // 2, len(data))]))
        start = time.perf_counter()
        try:
            read_gguf(path)
            ok += 1
        except GGUFError:
            failed += 1
        assert time.perf_counter() - start < MAX_SECONDS
    assert failed > 100  # most mutations are caught; the rest parse into some valid header

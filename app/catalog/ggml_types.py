"""ggml tensor types: block size (elements) and block bytes, as in gguf-py's GGML_QUANT_SIZES."""

from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

QK_K = 256  # super-block size of the K-quants and IQ types


class GGMLType(NamedTuple):
    """One ggml tensor type: `block_elems` elements are stored in `block_bytes` bytes."""

    name: str
    block_elems: int
    block_bytes: int


_TYPES: tuple[tuple[int, GGMLType], ...] = (
    (0, GGMLType("F32", 1, 4)),
    (1, GGMLType("F16", 1, 2)),
    (2, GGMLType("Q4_0", 32, 2 + 16)),
    (3, GGMLType("Q4_1", 32, 2 + 2 + 16)),
    (6, GGMLType("Q5_0", 32, 2 + 4 + 16)),
    (7, GGMLType("Q5_1", 32, 2 + 2 + 4 + 16)),
    (8, GGMLType("Q8_0", 32, 2 + 32)),
    (9, GGMLType("Q8_1", 32, 4 + 4 + 32)),
    (10, GGMLType("Q2_K", QK_K, 2 + 2 + QK_K // 16 + QK_K // 4)),
    (11, GGMLType("Q3_K", QK_K, 2 + QK_K // 4 + QK_K // 8 + 12)),
    (12, GGMLType("Q4_K", QK_K, 2 + 2 + QK_K // 2 + 12)),
    (13, GGMLType("Q5_K", QK_K, 2 + 2 + QK_K // 2 + QK_K // 8 + 12)),
    (14, GGMLType("Q6_K", QK_K, 2 + QK_K // 2 + QK_K // 4 + QK_K // 16)),
    (15, GGMLType("Q8_K", QK_K, 4 + QK_K + QK_K // 8)),
    (16, GGMLType("IQ2_XXS", QK_K, 2 + QK_K // 4)),
    (17, GGMLType("IQ2_XS", QK_K, 2 + QK_K // 4 + QK_K // 32)),
    (18, GGMLType("IQ3_XXS", QK_K, 2 + QK_K // 4 + QK_K // 8)),
    (19, GGMLType("IQ1_S", QK_K, 2 + QK_K // 8 + QK_K // 16)),
    (20, GGMLType("IQ4_NL", 32, 2 + 16)),
    (21, GGMLType("IQ3_S", QK_K, 2 + QK_K // 4 + QK_K // 8 + QK_K // 32 + 4)),
    (22, GGMLType("IQ2_S", QK_K, 2 + QK_K // 4 + QK_K // 16)),
    (23, GGMLType("IQ4_XS", QK_K, 2 + 2 + QK_K // 2 + QK_K // 64)),
    (24, GGMLType("I8", 1, 1)),
    (25, GGMLType("I16", 1, 2)),
    (26, GGMLType("I32", 1, 4)),
    (27, GGMLType("I64", 1, 8)),
    (28, GGMLType("F64", 1, 8)),
    (29, GGMLType("IQ1_M", QK_K, QK_K // 8 + QK_K // 16 + QK_K // 32)),
    (30, GGMLType("BF16", 1, 2)),
    (34, GGMLType("TQ1_0", QK_K, 2 + 4 * 13)),
    (35, GGMLType("TQ2_0", QK_K, 2 + 64)),
    (39, GGMLType("MXFP4", 32, 1 + 16)),
    (40, GGMLType("NVFP4", 64, 4 + 32)),
    (41, GGMLType("Q1_0", 128, 2 + 16)),
)

GGML_TYPES: MappingProxyType[int, GGMLType] = MappingProxyType(dict(_TYPES))
"""ggml type id -> GGMLType, for every type gguf-py 0.19 knows (removed ids 4, 5, 31-33, 36-38
are absent on purpose: current llama.cpp rejects them too)."""

GGML_TYPE_IDS: MappingProxyType[str, int] = MappingProxyType({t.name: i for i, t in _TYPES})
"""Type name ("Q4_K") -> ggml type id."""


def tensor_nbytes(ggml_type: int, n_elements: int) -> int:
    """Bytes of a tensor with `n_elements` of `ggml_type` (KeyError for an unknown type)."""
    t = GGML_TYPES[ggml_type]
    return n_elements // t.block_elems * t.block_bytes

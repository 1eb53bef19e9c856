"""app.catalog.gguf against the reference reader (gguf-py's GGUFReader) on the real test models,
on synthetic headers from tests/gguf_writer.py, and on split models."""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFReader, GGUFValueType

from app.catalog.ggml_types import GGML_TYPE_IDS, GGML_TYPES, tensor_nbytes
from app.catalog.gguf import (
    MAX_NUMERIC_ITEMS,
    MAX_STRING_ITEMS,
    ArrayInfo,
    GGUFError,
    GGUFInfo,
    read_gguf,
)
from app.catalog.shards import read_model, split_paths
from tests.gguf_writer import (
    ARRAY,
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    UINT8,
    UINT16,
    UINT32,
    UINT64,
    Tensor,
    Typed,
    write_gguf,
    write_split,
)

Q4_K, Q6_K, F32, MXFP4 = (GGML_TYPE_IDS[n] for n in ("Q4_K", "Q6_K", "F32", "MXFP4"))

# convenience property -> key ("{a}" = architecture)
PROPERTY_KEYS = {
    "architecture": "general.architecture",
    "name": "general.name",
    "file_type": "general.file_type",
    "chat_template": "tokenizer.chat_template",
    "split_no": "split.no",
    "split_count": "split.count",
    "split_tensors_count": "split.tensors.count",
    "context_length": "{a}.context_length",
    "block_count": "{a}.block_count",
    "embedding_length": "{a}.embedding_length",
    "feed_forward_length": "{a}.feed_forward_length",
    "head_count": "{a}.attention.head_count",
    "head_count_kv": "{a}.attention.head_count_kv",
    "key_length": "{a}.attention.key_length",
    "value_length": "{a}.attention.value_length",
    "key_length_swa": "{a}.attention.key_length_swa",
    "value_length_swa": "{a}.attention.value_length_swa",
    "sliding_window": "{a}.attention.sliding_window",
    "sliding_window_pattern": "{a}.attention.sliding_window_pattern",
    "full_attention_interval": "{a}.full_attention_interval",
    "ssm_conv_kernel": "{a}.ssm.conv_kernel",
    "ssm_inner_size": "{a}.ssm.inner_size",
    "ssm_state_size": "{a}.ssm.state_size",
    "ssm_group_count": "{a}.ssm.group_count",
    "expert_count": "{a}.expert_count",
    "expert_used_count": "{a}.expert_used_count",
    "expert_shared_count": "{a}.expert_shared_count",
    "nextn_predict_layers": "{a}.nextn_predict_layers",
    "kv_lora_rank": "{a}.attention.kv_lora_rank",
    "pooling_type": "{a}.pooling_type",
}


@pytest.fixture(scope="module", params=["smollm", "gemma"])
def real(request: pytest.FixtureRequest) -> tuple[GGUFInfo, GGUFReader]:
    """(our reading, the reference reading) of one real model; GGUFReader takes ~2-12 s."""
    path: Path = request.getfixturevalue(f"{request.param}_path")
    return read_gguf(path), GGUFReader(path)


def _oracle_value(field: Any) -> object:
    """A field as the reference reader sees it: scalars and array contents as Python values."""
    value = field.contents()
    if isinstance(value, list):
        return [v.item() if hasattr(v, "item") else v for v in value]
    return value.item() if hasattr(value, "item") else value


def compare_with_oracle(info: GGUFInfo, ref: GGUFReader) -> None:
    """Every metadata entry and tensor of `info` equals what GGUFReader read."""
    fields = {k: f for k, f in ref.fields.items() if not k.startswith("GGUF.")}
    assert list(info.metadata) == list(fields)
    assert info.version == int(ref.fields["GGUF.version"].contents())
    for key, field in fields.items():
        ours, vtype = info.metadata[key], field.types[0]
        if vtype == GGUFValueType.ARRAY and len(field.types) == 1:
            assert ours == (), key  # GGUFReader records no item type for an empty array
        elif vtype == GGUFValueType.ARRAY:
            item_type, length = field.types[1], len(field.data)
            kept = MAX_STRING_ITEMS if item_type == GGUFValueType.STRING else MAX_NUMERIC_ITEMS
            if item_type == GGUFValueType.ARRAY or length > kept:
                assert ours == ArrayInfo(int(item_type), length), key
            else:
                assert isinstance(ours, tuple), key
                assert list(ours) == _oracle_value(field), key
        else:
            assert ours == _oracle_value(field), key
            expected_type = {GGUFValueType.STRING: str, GGUFValueType.BOOL: bool}.get(
                vtype, float if vtype in (GGUFValueType.FLOAT32, GGUFValueType.FLOAT64) else int
            )
            assert type(ours) is expected_type, key
    assert len(info.tensors) == len(ref.tensors)
    for ours_t, ref_t in zip(info.tensors, ref.tensors, strict=True):
        assert ours_t.name == ref_t.name
        assert ours_t.shape == tuple(int(d) for d in ref_t.shape)
        assert ours_t.ggml_type == int(ref_t.tensor_type)
        assert info.data_offset + ours_t.offset == ref_t.data_offset
        assert ours_t.n_bytes == ref_t.n_bytes
        assert ours_t.n_elements == ref_t.n_elements
        assert ours_t.type_name == ref_t.tensor_type.name
    assert info.data_offset == ref.data_offset
    assert info.tensor_bytes == sum(int(t.n_bytes) for t in ref.tensors)


def compare_properties(info: GGUFInfo, ref: GGUFReader) -> None:
    """Each convenience property equals its raw key (None when absent)."""
    arch = ref.fields["general.architecture"].contents()
    for prop, key in PROPERTY_KEYS.items():
        field = ref.fields.get(key.replace("{a}", arch))
        expected = None if field is None else _oracle_value(field)
        if isinstance(expected, list):
            expected = tuple(expected)
        assert getattr(info, prop) == expected, prop
    tokens = ref.fields.get("tokenizer.ggml.tokens")
    assert tokens is not None
    assert info.vocab_size == len(tokens.data)


def test_real_models_match_reference_reader(real: tuple[GGUFInfo, GGUFReader]) -> None:
    info, ref = real
    compare_with_oracle(info, ref)
    compare_properties(info, ref)
    assert info.file_size == info.path.stat().st_size
    assert info.data_end == info.file_size  # complete file: last tensor ends at EOF
    assert not info.truncated


def test_smollm2_metadata(smollm_path: Path) -> None:
    info = read_gguf(smollm_path)
    assert (info.architecture, info.block_count, info.context_length) == ("llama", 30, 8192)
    assert (info.embedding_length, info.head_count, info.head_count_kv) == (576, 9, 3)
    assert info.key_length is None  # llama: head dim = 576 / 9 = 64 (= rope.dimension_count)
    assert info.vocab_size == 49152
    assert info.metadata["tokenizer.ggml.merges"] == ArrayInfo(STRING, 48900)
    assert info.metadata["general.languages"] == ("en",)
    assert info.chat_template is not None
    assert "<|im_start|>" in info.chat_template
    assert info.file_type == 3  # MOSTLY_Q4_1


def test_gemma3_metadata(gemma_path: Path) -> None:
    info = read_gguf(gemma_path)
    assert (info.architecture, info.block_count, info.context_length) == ("gemma3", 18, 32768)
    assert (info.head_count, info.head_count_kv) == (4, 1)
    assert (info.key_length, info.value_length, info.embedding_length) == (256, 256, 640)
    assert info.sliding_window == 512
    assert info.sliding_window_pattern is None  # llama.cpp hard-codes gemma3's 5:1 pattern
    assert info.chat_template is None  # this GGUF ships without a chat template
    assert info.vocab_size == 262144
    assert info.metadata["tokenizer.ggml.scores"] == ArrayInfo(FLOAT32, 262144)
    assert info.file_type == 15  # MOSTLY_Q4_K_M


@pytest.mark.parametrize("fixture", ["smollm_path", "gemma_path"])
def test_real_header_parses_fast(fixture: str, request: pytest.FixtureRequest) -> None:
    path: Path = request.getfixturevalue(fixture)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        read_gguf(path)
        best = min(best, time.perf_counter() - start)
    assert best < 0.5, f"{path.name}: {best:.3f} s"


def test_ggml_type_table_matches_gguf_py() -> None:
    ours = {i: (t.block_elems, t.block_bytes) for i, t in GGML_TYPES.items()}
    assert ours == {int(k): v for k, v in GGML_QUANT_SIZES.items()}
    for i, t in GGML_TYPES.items():
        assert t.name == GGMLQuantizationType(i).name
    assert GGML_TYPES[39].name == "MXFP4"
    assert tensor_nbytes(MXFP4, 2880 * 2880) == 2880 * 2880 // 32 * 17


def all_types_metadata() -> list[tuple[str, object]]:
    """One entry of every value type, arrays on both sides of the keep/skip limits."""
    return [
        ("general.architecture", "testarch"),
        ("general.name", "Täst ✓"),
        ("general.alignment", Typed(UINT32, 64)),
        ("t.u8", Typed(UINT8, 255)),
        ("t.i8", Typed(INT8, -128)),
        ("t.u16", Typed(UINT16, 65535)),
        ("t.i16", Typed(INT16, -32768)),
        ("t.u32", Typed(UINT32, 2**32 - 1)),
        ("t.i32", Typed(INT32, -(2**31))),
        ("t.u64", Typed(UINT64, 2**64 - 1)),
        ("t.i64", Typed(INT64, -(2**63))),
        ("t.f32", 0.5),
        ("t.f64", Typed(FLOAT64, 1e300)),
        ("t.bool", True),
        ("t.empty_str", ""),
        ("t.empty_array", Typed(ARRAY, [], UINT32)),
        ("t.small_ints", list(range(MAX_NUMERIC_ITEMS))),
        ("t.big_ints", list(range(MAX_NUMERIC_ITEMS + 1))),
        ("t.big_u64", Typed(ARRAY, list(range(5000)), UINT64)),
        ("t.floats", [0.25, -1.5]),
        ("t.f64s", Typed(ARRAY, [0.1, 0.2], FLOAT64)),
        ("t.bools", [True, False, True]),
        ("t.small_strs", [f"s{i}" for i in range(MAX_STRING_ITEMS)]),
        ("t.big_strs", [f"s{i}" * (i % 7) for i in range(MAX_STRING_ITEMS + 1)]),
        ("tokenizer.ggml.tokens", ArrayInfo(STRING, 5000)),
    ]


def synthetic_tensors() -> list[Tensor]:
    return [
        Tensor("token_embd.weight", (256, 1000), Q4_K),
        Tensor("blk.0.attn_norm.weight", (256,), F32),
        Tensor("blk.0.ffn_up_exps.weight", (2880, 64, 8), MXFP4),
        Tensor("blk.0.ffn_down.weight", (512, 256), Q6_K),
        Tensor("blk.0.bf16", (7, 3, 2, 5), GGML_TYPE_IDS["BF16"]),
        Tensor("blk.0.iq", (512, 3), GGML_TYPE_IDS["IQ2_XXS"]),
    ]


@pytest.mark.parametrize("version", [2, 3])
def test_synthetic_file_matches_reference_reader(tmp_path: Path, version: int) -> None:
    path = write_gguf(
        tmp_path / "t.gguf", all_types_metadata(), synthetic_tensors(), version=version
    )
    info = read_gguf(path)
    compare_with_oracle(info, GGUFReader(path))
    assert info.version == version
    assert info.data_offset % 64 == 0
    assert all(t.offset % 64 == 0 for t in info.tensors)
    md = info.metadata
    assert md["t.u64"] == 2**64 - 1
    assert md["t.i64"] == -(2**63)
    assert md["t.small_ints"] == tuple(range(MAX_NUMERIC_ITEMS))
    assert md["t.big_ints"] == ArrayInfo(INT32, MAX_NUMERIC_ITEMS + 1)
    assert md["t.big_strs"] == ArrayInfo(STRING, MAX_STRING_ITEMS + 1)
    assert md["t.bools"] == (True, False, True)
    assert md["t.empty_array"] == ()
    assert info.vocab_size == 5000
    assert info.data_end == info.file_size == path.stat().st_size
    assert info.metadata.get("nope") is None
    with pytest.raises(TypeError):
        info.metadata["x"] = 1  # type: ignore[index]


def test_info_is_hashable_picklable_and_read_only(smollm_path: Path) -> None:
    info = read_gguf(smollm_path)
    again = pickle.loads(pickle.dumps(info))
    assert again == info
    assert hash(again) == hash(info)
    assert isinstance(again.metadata, MappingProxyType)
    model = read_model(smollm_path)
    assert pickle.loads(pickle.dumps(model)) == model
    assert len({model, read_model(smollm_path)}) == 1
    by_hand = GGUFInfo(Path("x.gguf"), 3, {"general.architecture": "llama"}, (), 32, 32)
    assert by_hand.architecture == "llama"
    with pytest.raises(TypeError):
        by_hand.metadata["x"] = 1  # type: ignore[index]


def test_nested_arrays_are_skipped(tmp_path: Path) -> None:
    nested = [[1, 2], [3], [], [[True]]]
    path = write_gguf(tmp_path / "n.gguf", {"a.nested": nested, "a.after": "ok"})
    info = read_gguf(path)
    assert info.metadata == {"a.nested": ArrayInfo(ARRAY, 4), "a.after": "ok"}


def test_properties_of_hybrid_and_moe_headers(tmp_path: Path) -> None:
    md = {
        "general.architecture": "qwen3next",
        "qwen3next.block_count": 4,
        "qwen3next.attention.head_count": [16, 0, 16, 0],
        "qwen3next.attention.head_count_kv": Typed(ARRAY, [2, 0, 2, 0], UINT32),
        "qwen3next.attention.sliding_window_pattern": [True, True, False, True],
        "qwen3next.full_attention_interval": 4,
        "qwen3next.ssm.conv_kernel": 4,
        "qwen3next.ssm.inner_size": 4096,
        "qwen3next.ssm.state_size": 128,
        "qwen3next.ssm.group_count": 16,
        "qwen3next.expert_count": 512,
        "qwen3next.expert_used_count": 10,
        "qwen3next.vocab_size": 151936,
        "qwen3next.context_length": Typed(UINT64, 262144),
        "general.file_type": Typed(INT32, 7),
    }
    info = read_gguf(write_gguf(tmp_path / "h.gguf", md))
    assert info.head_count == (16, 0, 16, 0)
    assert info.head_count_kv == (2, 0, 2, 0)
    assert info.sliding_window_pattern == (True, True, False, True)
    assert (info.full_attention_interval, info.ssm_conv_kernel, info.ssm_inner_size) == (4, 4, 4096)
    assert (info.ssm_state_size, info.ssm_group_count) == (128, 16)
    assert (info.expert_count, info.expert_used_count) == (512, 10)
    assert info.vocab_size == 151936  # no tokens array: falls back to {arch}.vocab_size
    assert info.context_length == 262144
    assert info.file_type == 7
    assert info.chat_template is None
    assert info.tensors == ()
    assert info.tensor_bytes == 0


def test_properties_tolerate_wrong_types_and_missing_arch(tmp_path: Path) -> None:
    md = {
        "general.architecture": "x",
        "x.context_length": "4096",  # a string where an int belongs
        "x.block_count": True,  # bools are not ints
        "x.attention.sliding_window_pattern": 6,
        "x.attention.head_count": ["a"],
    }
    info = read_gguf(write_gguf(tmp_path / "w.gguf", md))
    assert info.context_length is None
    assert info.block_count is None
    assert info.sliding_window_pattern == 6
    assert info.head_count is None
    no_arch = read_gguf(write_gguf(tmp_path / "n.gguf", {"x.context_length": 4096}))
    assert no_arch.architecture is None
    assert no_arch.context_length is None
    assert no_arch.vocab_size is None


def test_sparse_header_only_and_truncated_files(tmp_path: Path) -> None:
    tensors = synthetic_tensors()
    full = read_gguf(write_gguf(tmp_path / "full.gguf", {}, tensors))
    header = read_gguf(write_gguf(tmp_path / "hdr.gguf", {}, tensors, data="header"))
    bare = read_gguf(write_gguf(tmp_path / "bare.gguf", {}, tensors, data="none"))
    assert full.tensor_bytes == header.tensor_bytes == sum(t.n_bytes for t in tensors)
    assert full.file_size == full.data_end
    assert not full.truncated
    assert header.truncated
    assert header.file_size == header.data_offset
    assert bare.truncated
    assert bare.file_size < bare.data_offset
    assert full.tensors == header.tensors == bare.tensors


def _split_keys(no: int, count: int, n_tensors: int) -> list[tuple[str, object]]:
    return [
        ("split.no", Typed(UINT16, no)),
        ("split.count", Typed(UINT16, count)),
        ("split.tensors.count", Typed(INT32, n_tensors)),
    ]


def _shard_name(i: int, n: int) -> str:
    return f"smol-{i:05d}-of-{n:05d}.gguf"


@pytest.mark.parametrize("n_shards", [2, 3])
def test_split_model_from_real_header(tmp_path: Path, smollm_path: Path, n_shards: int) -> None:
    orig = read_gguf(smollm_path)
    tensors = [Tensor(t.name, t.shape, t.ggml_type) for t in orig.tensors]
    paths = write_split(tmp_path / "smol", orig.metadata, tensors, n_shards)
    assert [p.name for p in paths] == [_shard_name(i, n_shards) for i in range(1, n_shards + 1)]
    for p in paths:
        assert split_paths(p) == paths
    model = read_model(paths[-1])
    assert model.path == paths[0]
    assert model.info is model.shards[0]
    assert [s.path for s in model.shards] == paths
    assert model.tensor_bytes == orig.tensor_bytes
    assert model.file_bytes == sum(p.stat().st_size for p in paths)
    assert model.file_bytes > orig.tensor_bytes
    assert [(t.name, t.shape, t.ggml_type, t.n_bytes) for t in model.tensors] == [
        (t.name, t.shape, t.ggml_type, t.n_bytes) for t in orig.tensors
    ]
    info = model.info
    assert {k: v for k, v in info.metadata.items() if not k.startswith("split.")} == dict(
        orig.metadata
    )
    assert (info.split_no, info.split_count, info.split_tensors_count) == (0, n_shards, 272)
    assert info.vocab_size == 49152
    assert info.architecture == "llama"
    last = model.shards[-1]
    assert last.architecture is None  # later shards carry only the split.* keys
    assert last.split_no == n_shards - 1
    assert all(not s.truncated for s in model.shards)


def test_split_missing_shard(tmp_path: Path, smollm_path: Path) -> None:
    orig = read_gguf(smollm_path)
    tensors = [Tensor(t.name, t.shape, t.ggml_type) for t in orig.tensors[:30]]
    paths = write_split(tmp_path / "smol", {"general.architecture": "llama"}, tensors, 3)
    paths[1].unlink()
    for p in (paths[0], paths[2]):
        with pytest.raises(GGUFError, match=_shard_name(2, 3)):
            split_paths(p)
        with pytest.raises(GGUFError, match="missing"):
            read_model(p)


def test_split_metadata_must_match_names(tmp_path: Path) -> None:
    tensors = [Tensor(f"t{i}", (32,), F32) for i in range(4)]
    paths = write_split(tmp_path / "m", {}, tensors, 2)
    # shard files swapped: split.no no longer matches the position in the name
    tmp = paths[0].with_suffix(".tmp")
    paths[0].rename(tmp)
    paths[1].rename(paths[0])
    tmp.rename(paths[1])
    with pytest.raises(GGUFError, match="split.no"):
        read_model(paths[0])
    # a lone shard renamed to a plain name
    lone = tmp_path / "lone.gguf"
    paths[0].rename(lone)
    with pytest.raises(GGUFError, match="split.count"):
        read_model(lone)
    # split.tensors.count disagrees with the shards
    first = write_gguf(tmp_path / "c-00001-of-00002.gguf", _split_keys(0, 2, 5), tensors[:2])
    write_gguf(tmp_path / "c-00002-of-00002.gguf", _split_keys(1, 2, 5), tensors[2:])
    with pytest.raises(GGUFError, match="split.tensors.count"):
        read_model(first)


def test_duplicate_tensor_across_shards(tmp_path: Path) -> None:
    paths = write_split(tmp_path / "d", {}, [Tensor("a", (32,), F32), Tensor("b", (32,), F32)], 2)
    write_gguf(paths[1], _split_keys(1, 2, 2), [Tensor("a", (32,), F32)])
    with pytest.raises(GGUFError, match="two shards"):
        read_model(paths[0])


@pytest.mark.parametrize(
    "name", ["m-00000-of-00002.gguf", "m-00003-of-00002.gguf", "m-00001-of-00000.gguf"]
)
def test_split_paths_rejects_bad_numbers(tmp_path: Path, name: str) -> None:
    with pytest.raises(GGUFError, match="bad split file name"):
        split_paths(tmp_path / name)


def test_non_split_paths(tmp_path: Path) -> None:
    path = write_gguf(tmp_path / "plain-00001.gguf", {"general.architecture": "llama"})
    assert split_paths(path) == [path]
    model = read_model(path)
    assert model.shards == (model.info,)
    assert model.file_bytes == path.stat().st_size
    one = write_split(tmp_path / "one", {}, [Tensor("a", (32,), F32)], 1)
    assert read_model(one[0]).tensor_bytes == 128


def test_unreadable_paths(tmp_path: Path) -> None:
    with pytest.raises(GGUFError, match="cannot read"):
        read_gguf(tmp_path / "absent.gguf")
    with pytest.raises(GGUFError, match="cannot read"):
        read_gguf(tmp_path)


def test_writer_output_is_valid_for_reference_reader(tmp_path: Path) -> None:
    md = {"general.architecture": "llama", "llama.block_count": 2, "s": ["a", "bc"], "b": True}
    path = write_gguf(tmp_path / "w.gguf", md, synthetic_tensors()[:2])
    ref = GGUFReader(path)
    assert ref.fields["s"].contents() == ["a", "bc"]
    assert ref.fields["llama.block_count"].types == [GGUFValueType.UINT32]
    assert ref.fields["b"].types == [GGUFValueType.BOOL]
    assert [t.name for t in ref.tensors] == ["token_embd.weight", "blk.0.attn_norm.weight"]

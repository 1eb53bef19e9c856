"""REPO[:QUANT] / REPO FILENAME against a repo's file list (pure)."""

from __future__ import annotations

import pytest

from app.errors import BadModelRef, HubNotFound
from app.hub.refs import RemoteFile, parse_ref, select, variants


def files(*names: str) -> list[RemoteFile]:
    return [RemoteFile(n, 1000 * (i + 1), f"{i:064x}") for i, n in enumerate(names)]


QWEN = files("README.md", "config.json", "Qwen3-14B-Q4_K_M.gguf", "Qwen3-14B-Q8_0.gguf",
             "Qwen3-14B-UD-Q4_K_XL.gguf", "Qwen3-14B-IQ4_XS.gguf", "Qwen3-14B-BF16.gguf")


def test_parse_ref_forms() -> None:
    assert parse_ref("org/name").repo == "org/name"
    ref = parse_ref("hf.co/unsloth/Qwen3-14B-GGUF:q8_0")
    assert (ref.repo, ref.quant, ref.filename) == ("unsloth/Qwen3-14B-GGUF", "q8_0", None)
    assert parse_ref("org/name", "x.gguf").filename == "x.gguf"
    assert parse_ref("org/name@v2:Q4_K_M").revision == "v2"
    for bad in ("name-only", "a/b/c", "", "org/name:Q4 extra"):
        with pytest.raises(BadModelRef):
            parse_ref(bad)
    with pytest.raises(BadModelRef):
        parse_ref("org/name:Q8_0", "x.gguf")


def test_default_is_q4_k_m_and_quant_matching_ignores_case() -> None:
    assert select(parse_ref("o/r"), QWEN).variant.files[0].name == "Qwen3-14B-Q4_K_M.gguf"
    assert select(parse_ref("o/r:q8_0"), QWEN).variant.files[0].name == "Qwen3-14B-Q8_0.gguf"
    chosen = select(parse_ref("o/r:ud-q4_k_xl"), QWEN)
    assert chosen.variant.files[0].name == "Qwen3-14B-UD-Q4_K_XL.gguf"
    assert chosen.source == "o/r:UD-Q4_K_XL"
    assert chosen.model_id == "Qwen3-14B-UD-Q4_K_XL"
    assert select(parse_ref("o/r:IQ4_XS"), QWEN).variant.label == "IQ4_XS"


def test_missing_variant_lists_the_choices() -> None:
    with pytest.raises(HubNotFound) as info:
        select(parse_ref("o/r:Q2_K"), QWEN)
    for label in ("Q4_K_M", "Q8_0", "UD-Q4_K_XL", "IQ4_XS", "BF16"):
        assert label in info.value.message
    no_default = files("M-Q8_0.gguf", "M-Q6_K.gguf")
    with pytest.raises(HubNotFound, match="Q4_K_M variant .the default.; choose one of: Q6_K"):
        select(parse_ref("o/r"), no_default)
    with pytest.raises(HubNotFound, match="no GGUF"):
        select(parse_ref("o/r"), files("model.safetensors"))


def test_the_only_gguf_is_the_default() -> None:
    assert select(parse_ref("o/r"), files("tiny.gguf")).variant.files[0].name == "tiny.gguf"


def test_filename_form() -> None:
    chosen = select(parse_ref("o/r", "Qwen3-14B-BF16.gguf"), QWEN)
    assert chosen.variant.label == "BF16"
    with pytest.raises(HubNotFound, match="no GGUF file 'nope.gguf'"):
        select(parse_ref("o/r", "nope.gguf"), QWEN)


def test_split_variants_need_every_shard_and_keep_their_order() -> None:
    listing = files("Q4_K_M/Big-Q4_K_M-00002-of-00003.gguf",
                    "Q4_K_M/Big-Q4_K_M-00001-of-00003.gguf",
                    "Q4_K_M/Big-Q4_K_M-00003-of-00003.gguf",
                    "Q8_0/Big-Q8_0-00001-of-00002.gguf")  # shard 2 missing: not a variant
    found = variants(listing)
    assert [v.label for v in found] == ["Q4_K_M"]
    chosen = select(parse_ref("o/r"), listing)
    assert [f.basename for f in chosen.variant.files] == [
        f"Big-Q4_K_M-0000{i}-of-00003.gguf" for i in (1, 2, 3)]
    assert chosen.model_id == "Big-Q4_K_M"
    assert chosen.size == sum(f.size for f in listing[:3])
    # naming any shard picks the whole model
    by_name = select(parse_ref("o/r", "Big-Q4_K_M-00002-of-00003.gguf"), listing)
    assert len(by_name.variant.files) == 3


def test_mmproj_comes_along_and_is_never_a_variant() -> None:
    listing = files("gemma-3-4b-it-Q4_K_M.gguf", "mmproj-model-bf16.gguf",
                    "mmproj-model-f16.gguf", "mmproj-model-f32.gguf")
    assert [v.label for v in variants(listing)] == ["Q4_K_M"]
    chosen = select(parse_ref("o/r"), listing)
    assert chosen.mmproj is not None
    assert chosen.mmproj.name == "mmproj-model-f16.gguf"
    assert len(chosen.files) == 2


def test_ambiguous_quant_is_refused() -> None:
    listing = files("a/M-Q4_K_M.gguf", "b/M-Q4_K_M.gguf")
    with pytest.raises(BadModelRef, match="matches several files"):
        select(parse_ref("o/r"), listing)

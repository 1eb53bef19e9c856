"""The CPU variant choice: best score among what this CPU runs; AMX only when proven."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.hardware.amx import advertised, check_amx, verdict_of
from app.hardware.cpu_variants import AMX_VARIANTS, Variant, choose_variant, variant_name
from app.hardware.ggml_backends import module_dir
from app.hardware.llama_devices import find_lib_dir

# Scores as ggml_backend_score() gives them on an AVX-512 + AMX Xeon (sapphirerapids-class)
XEON = [Variant("x64", 1), Variant("sse42", 5), Variant("sandybridge", 21),
        Variant("haswell", 63), Variant("skylakex", 191), Variant("icelake", 447),
        Variant("cooperlake", 703), Variant("zen4", 1983), Variant("alderlake", 127),
        Variant("sapphirerapids", 4031)]
# A Zen 5 (Strix Halo): AVX-512 with VNNI/BF16/VBMI, no AMX (score 0 for sapphirerapids)
ZEN5 = [*(v for v in XEON if v.name != "sapphirerapids"), Variant("sapphirerapids", 0)]


def test_amx_variant_only_when_the_check_passed() -> None:
    assert choose_variant(XEON, amx_usable=True).name == "sapphirerapids"
    choice = choose_variant(XEON, amx_usable=False)
    assert choice.name == "zen4"
    assert "AMX" in choice.skipped["sapphirerapids"]


def test_zen5_gets_the_best_avx512_variant() -> None:
    choice = choose_variant(ZEN5, amx_usable=False)
    assert choice.name == "zen4"
    assert "score" in choice.reasons[0]


def test_old_cpu_gets_the_baseline() -> None:
    old = [Variant("x64", 1), Variant("sse42", 0), Variant("haswell", 0)]
    choice = choose_variant(old, amx_usable=False)
    assert choice.name == "x64"
    assert choice.skipped["haswell"] == "needs instructions this CPU does not have"


def test_nothing_runnable_is_an_answer_with_reasons() -> None:
    choice = choose_variant([Variant("haswell", 0)], amx_usable=False)
    assert choice.name is None
    assert choice.reasons


def test_forced_variant_is_taken_if_installed() -> None:
    assert choose_variant(XEON, amx_usable=False, forced="haswell").name == "haswell"
    missing = choose_variant(XEON, amx_usable=False, forced="nope")
    assert missing.name is None
    assert "not installed" in missing.reasons[0]


@given(st.lists(st.tuples(st.sampled_from([v.name for v in XEON]), st.integers(0, 5000)),
                unique_by=lambda t: t[0]), st.booleans())
def test_choice_invariants(pairs: list[tuple[str, int]], amx: bool) -> None:
    variants = [Variant(name, score) for name, score in pairs]
    choice = choose_variant(variants, amx_usable=amx)
    allowed = [v for v in variants if v.score > 0 and (amx or not v.uses_amx)]
    if not allowed:
        assert choice.name is None
        return
    best = max(v.score for v in allowed)
    chosen = next(v for v in variants if v.name == choice.name)
    assert chosen.score == best
    assert amx or chosen.name not in AMX_VARIANTS
    assert set(choice.skipped) == {v.name for v in variants} - {chosen.name}


@pytest.mark.parametrize(("filename", "name"), [
    ("libggml-cpu-haswell.so", "haswell"), ("libggml-cpu-x64.so", "x64"),
    ("libggml-cpu.so", None), ("libggml-vulkan.so", None), ("libggml-cpu-zen4.so.0", None)])
def test_variant_name(filename: str, name: str | None) -> None:
    assert variant_name(filename) == name


def test_amx_advertised_reads_the_flags() -> None:
    assert advertised("processor : 0\nflags\t\t: fpu avx512f amx_bf16 amx_tile amx_int8\n")
    assert not advertised("processor : 0\nflags\t\t: fpu avx2 avx512f\n")
    assert not advertised("")


def test_amx_verdicts() -> None:
    assert verdict_of(0, "load_backend: ...\nexecutes\n").usable
    assert verdict_of(-signal.SIGILL, "").verdict == "sigill"
    assert verdict_of(4, "the variant has no AMX buffer type").verdict == "refused"
    assert verdict_of(-signal.SIGSEGV, "").verdict == "error"
    assert not verdict_of(1, "Traceback").usable


def test_amx_check_on_this_machine_agrees_with_ggml(tmp_path: Path) -> None:
    """The real check against the installed build: whatever it answers, the AMX variant is
    usable only if ggml's own AMX kernel ran in the child (no SIGILL)."""
    lib = find_lib_dir({})
    assert lib is not None
    modules = module_dir(lib)
    check = check_amx(lib, modules)
    cpuinfo = Path("/proc/cpuinfo").read_text()
    if not advertised(cpuinfo):
        assert check.verdict == "not_advertised"
    else:
        assert check.verdict in {"executes", "sigill", "refused", "not_installed"}, check
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor : 0\nflags : fpu avx2\n")
    assert check_amx(lib, modules, cpuinfo_path=fake).verdict == "not_advertised"

"""What `make install` put in the venv runs on any x86-64: nothing compiled for the build host.

The libraries every worker loads (libllama, libggml, libggml-base, ...) must use only the
baseline x86-64 instruction set: no AVX (ymm), AVX-512 (zmm/k-masks) or AMX (tmm) register
anywhere in them. Each CPU variant module may use exactly its level's registers, and AMX tile
instructions appear only in the variants that halo runs after its AMX execution check
(``AMX_VARIANTS``). Checked by disassembling the installed files (objdump, binutils).
"""

from __future__ import annotations

import re
import subprocess
from functools import cache
from pathlib import Path

import pytest

from app.hardware.cpu_variants import AMX_VARIANTS, variant_name
from app.hardware.ggml_backends import module_dir
from app.hardware.llama_devices import find_lib_dir
from tests.system_tools import require_tool

# variant -> widest vector registers it may use (ggml/src/CMakeLists.txt, GGML_CPU_ALL_VARIANTS)
XMM_ONLY = {"x64", "sse42"}
YMM = {"sandybridge", "ivybridge", "piledriver", "haswell", "alderlake"}
ZMM = {"skylakex", "cannonlake", "cascadelake", "icelake", "cooperlake", "zen4",
       "sapphirerapids"}
BASE_LIBS = ("libllama.so", "libggml.so", "libggml-base.so")
_REG = re.compile(r"%(ymm|zmm|tmm)\d+")
_AMX = re.compile(r"\b(tileloadd|tileloaddt1|tdpbssd|tdpbsud|tdpbusd|tdpbuud|tdpbf16ps|"
                  r"tdpfp16ps|ldtilecfg|tilestored|tilezero)\b")


def lib_dir() -> Path:
    found = find_lib_dir({})
    assert found is not None, "llama_cpp is not installed in this venv (make install)"
    return found


@cache
def registers(path: Path) -> frozenset[str]:
    """Register classes (ymm/zmm/tmm) and 'amx' if tile instructions appear in ``path``."""
    objdump = require_tool("objdump")
    seen: set[str] = set()
    with subprocess.Popen([objdump, "-d", "--no-show-raw-insn", str(path)],
                          stdout=subprocess.PIPE, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "%" in line:
                seen.update(m.group(1) for m in _REG.finditer(line))
            if ("tile" in line or "tdp" in line) and _AMX.search(line):
                seen.add("amx")
    assert proc.returncode == 0
    return frozenset(seen)


def variants() -> dict[str, Path]:
    return {name: p for p in sorted(module_dir(lib_dir()).glob("libggml-cpu-*.so"))
            if (name := variant_name(p.name))}


def test_cpu_backend_is_modules_with_a_baseline() -> None:
    found = variants()
    assert "x64" in found, f"no baseline variant in {lib_dir()}: {sorted(found)}"
    assert {"haswell", "skylakex", "zen4"} <= set(found), sorted(found)
    for where in (lib_dir(), module_dir(lib_dir())):
        assert not (where / "libggml-cpu.so").exists(), "a single (host-tuned) CPU backend"


@pytest.mark.parametrize("name", BASE_LIBS)
def test_base_libraries_use_only_baseline_x86_64(name: str) -> None:
    path = lib_dir() / name
    assert path.exists(), path
    assert registers(path) == frozenset(), f"{name} was compiled for a wider ISA"


def test_each_variant_stays_within_its_level() -> None:
    for name, path in variants().items():
        regs = registers(path)
        if name in XMM_ONLY:
            assert not regs & {"ymm", "zmm", "amx", "tmm"}, (name, regs)
        elif name in YMM:
            assert not regs & {"zmm", "amx", "tmm"}, (name, regs)
        else:
            assert name in ZMM, f"unknown variant {name}: add it to this test"
        if "amx" in regs or "tmm" in regs:
            assert name in AMX_VARIANTS, f"{name} has AMX code but is not gated by the check"

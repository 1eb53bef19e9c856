"""The backend policy (pure): which llama.cpp backend, with which settings, and why.

- ``auto``: Vulkan (RADV preferred) when llama.cpp's Vulkan backend sees a GPU: on Strix Halo it
  has the best token generation and is the most stable. Else ROCm, if the build has it and every
  ROCm check passes. Else the CPU, with what to install to get the GPU.
- ``vulkan`` / ``rocm``: that backend if every check passes. If not, the choice is the CPU with
  ``ok=False`` and the reasons: the server can still serve, and ``halo probe`` exits non-zero.
- ``cpu``: the CPU, always ``ok``.

llvmpipe is never treated as a GPU unless ``allow_software_vulkan=True`` (testing only; then
``GGML_VK_VISIBLE_DEVICES`` selects it). A GPU choice offloads every layer (``n_gpu_layers=-1``),
turns flash attention on and ``use_mmap`` off: on unified memory mmap keeps a second copy of the
weights in the page cache, and on ROCm mmap-loaded weights have given wrong results.

The CPU choice stores attention keys as q8_0 and values as f16 (a model's `cache_type_k/v`
overrides it). With those types llama.cpp's CPU flash attention computes every query row with one
kernel whatever the step holds; with f16 keys and values it takes a split-KV kernel for a lone
decode query past 512 cells and a tiled one from 64 queries on, which round differently. So on
the CPU a verifying step's attention equals a plain step's, and where the weights' matrix
products do not change kernel with the batch width either (SmolLM2's Q4_1, measured bit for bit
up to 64 tokens; not Gemma 3's Q4_K, repacked for 4+ rows) greedy speculation is exact and a
sequence's output does not depend on what else shares its steps. Measured (docs/benchmarks.md):
decode as fast or faster, an 800-token prompt ~10% slower to prefill, NLL within 0.3%. GPU
backends keep f16 for both: their flash-attention kernels are chosen by batch shape anyway, so
the reason does not carry over, and no GPU measurement backs another default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from app.hardware.checks import Assessment, assess_rocm, assess_vulkan
from app.hardware.llama_build import LlamaBuild
from app.hardware.os_facts import OsFacts
from app.hardware.rocminfo import RocmInfo
from app.hardware.vulkan import VulkanDevice

Requested = Literal["auto", "cpu", "vulkan", "rocm"]
REQUESTS: tuple[str, ...] = ("auto", "cpu", "vulkan", "rocm")
CPU_CACHE_TYPES = ("q8_0", "f16")
GPU_SETTINGS = "all layers on the GPU (n_gpu_layers=-1), flash attention on, use_mmap off"


@dataclass(frozen=True)
class BackendChoice:
    backend: str
    n_gpu_layers: int
    use_mmap: bool
    flash_attn: bool
    env: Mapping[str, str] = field(default_factory=dict)
    #: ``LLAMA_CPP_LIB_PATH`` for the workers; ``None`` = the installed llama_cpp package.
    lib_path: str | None = None
    reasons: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    requested: str = "auto"
    #: the KV cache's (key, value) types where a model sets none
    cache_types: tuple[str, str] = ("f16", "f16")
    #: False when the requested backend cannot work here (the choice is then the CPU).
    ok: bool = True


def _cpu(
    requested: str, lib_path: str | None, reasons: list[str], warnings: list[str], *, ok: bool
) -> BackendChoice:
    return BackendChoice(
        backend="cpu",
        n_gpu_layers=0,
        use_mmap=True,
        flash_attn=False,
        cache_types=CPU_CACHE_TYPES,
        lib_path=lib_path,
        reasons=tuple(reasons),
        warnings=tuple(warnings),
        requested=requested,
        ok=ok,
    )


def _gpu(
    backend: str,
    requested: str,
    lib_path: str | None,
    why: str,
    found: Assessment,
    warnings: list[str],
) -> BackendChoice:
    return BackendChoice(
        backend=backend,
        n_gpu_layers=-1,
        use_mmap=False,
        flash_attn=True,
        env=dict(found.env),
        lib_path=lib_path,
        reasons=(why, *found.reasons, GPU_SETTINGS),
        warnings=(*warnings, *found.warnings),
        requested=requested,
        ok=True,
    )


def choose_backend(
    facts: OsFacts,
    build: LlamaBuild | None,
    *,
    requested: str = "auto",
    vulkan: tuple[VulkanDevice, ...] | None = None,
    rocm: RocmInfo | None = None,
    build_error: str | None = None,
    lib_path: str | None = None,
    allow_software_vulkan: bool = False,
) -> BackendChoice:
    """Pick the backend. ``vulkan``/``rocm`` are the parsed tool outputs (``None``: not run)."""
    if requested not in REQUESTS:
        raise ValueError(f"unknown backend {requested!r}; expected one of {', '.join(REQUESTS)}")
    warnings: list[str] = []
    override = facts.hsa_override_gfx_version
    if requested != "rocm" and facts.strix_halo and override not in (None, "11.5.1"):
        warnings.append(
            f"HSA_OVERRIDE_GFX_VERSION={override} is set: unset it "
            "(gfx1151 is supported natively; 11.5.1 is the only harmless value)"
        )
    if requested == "cpu":
        return _cpu(requested, lib_path, ["CPU requested"], warnings, ok=True)
    if build is None:
        reasons = [build_error or "the llama.cpp build could not be inspected"]
        if not facts.render_nodes:
            reasons.insert(0, "no GPU found (no /dev/dri render node)")
        return _cpu(requested, lib_path, reasons, warnings, ok=requested == "auto")
    machine = "Strix Halo" if facts.strix_halo else "this machine"
    vk = Assessment(ok=False)
    if requested in ("auto", "vulkan"):
        vk = assess_vulkan(facts, build, vulkan, allow_software=allow_software_vulkan)
        if vk.ok:
            why = (
                f"Vulkan: the default on {machine} (best token generation, most stable)"
                if requested == "auto"
                else "Vulkan requested and usable"
            )
            return _gpu("vulkan", requested, lib_path, why, vk, warnings)
        if requested == "vulkan":
            return _cpu(
                requested,
                lib_path,
                ["Vulkan requested but unusable", *vk.reasons],
                warnings + vk.warnings,
                ok=False,
            )
        if not build.has_backend("ROCm"):
            return _cpu(
                requested,
                lib_path,
                ["no usable GPU backend", *vk.reasons],
                warnings + vk.warnings,
                ok=True,
            )
    rc = assess_rocm(facts, build, rocm)
    if rc.ok:
        why = (
            "ROCm requested; every ROCm check passed"
            if requested == "rocm"
            else ("ROCm: Vulkan is not usable here and every ROCm check passed")
        )
        return _gpu("rocm", requested, lib_path, why, rc, warnings)
    if requested == "rocm":
        return _cpu(
            requested,
            lib_path,
            ["ROCm requested but unusable", *rc.reasons],
            warnings + rc.warnings,
            ok=False,
        )
    return _cpu(
        requested,
        lib_path,
        ["no usable GPU backend", *vk.reasons, *rc.reasons],
        warnings + vk.warnings + rc.warnings,
        ok=True,
    )

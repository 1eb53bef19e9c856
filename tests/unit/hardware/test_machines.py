"""Each fixture machine (tests/fixtures/machines/SOURCES.md): decision, reasons, pool."""

from __future__ import annotations

import json

from app.hardware.units import GIB, KIB
from tests.unit.hardware.helpers import machine_probe

CROW_MEMTOTAL = 131011448 * KIB
RESERVE = 6 * GIB


def _has(items: tuple[str, ...], fragment: str) -> bool:
    return any(fragment in item for item in items)


def test_healthy_auto_is_vulkan_on_radv() -> None:
    report = machine_probe("strix-halo-healthy")
    choice = report.choice
    assert (choice.backend, choice.ok, choice.requested) == ("vulkan", True, "auto")
    assert (choice.n_gpu_layers, choice.flash_attn, choice.use_mmap) == (-1, True, False)
    assert choice.env == {}
    assert _has(choice.reasons, "default on Strix Halo")
    assert _has(choice.reasons, "Vulkan0 = AMD Radeon Graphics (RADV GFX1151) (IGPU)")
    assert _has(choice.reasons, "driver: RADV (Mesa 25.2.8")
    assert choice.warnings == ()
    assert report.pool.source == "gtt"
    assert report.pool.budget_bytes == CROW_MEMTOTAL - RESERVE
    assert report.errors == ()


def test_healthy_rocm_when_asked() -> None:
    choice = machine_probe("strix-halo-healthy", requested="rocm").choice
    assert (choice.backend, choice.ok) == ("rocm", True)
    assert (choice.n_gpu_layers, choice.flash_attn, choice.use_mmap) == (-1, True, False)
    assert _has(choice.reasons, "every ROCm check passed")
    assert _has(choice.reasons, "Ubuntu 24.04 HWE build")
    assert _has(choice.reasons, "ROCm0 = Radeon 8060S Graphics (IGPU)")
    assert _has(choice.warnings, "#28211")


def test_healthy_cpu_when_asked() -> None:
    report = machine_probe("strix-halo-healthy", requested="cpu")
    assert (report.choice.backend, report.choice.n_gpu_layers, report.choice.ok) == ("cpu", 0, True)
    assert report.pool.source == "ram"


def test_old_kernel_refuses_rocm() -> None:
    auto = machine_probe("strix-halo-old-kernel").choice
    assert auto.backend == "vulkan"
    assert _has(auto.warnings, "HSA_OVERRIDE_GFX_VERSION=11.0.0 is set")
    rocm = machine_probe("strix-halo-old-kernel", requested="rocm").choice
    assert (rocm.backend, rocm.ok) == ("cpu", False)
    assert _has(rocm.reasons, "kernel 6.11.0-17-generic is older than AMD's minimum")
    assert _has(rocm.reasons, "about 15.5 GB")
    assert _has(rocm.reasons, "HSA_OVERRIDE_GFX_VERSION=11.0.0 makes ROCm run")


def test_hsa_override_refuses_rocm_only() -> None:
    auto = machine_probe("strix-halo-hsa-override")
    assert auto.choice.backend == "vulkan"
    assert _has(auto.choice.warnings, "unset it")
    rocm = machine_probe("strix-halo-hsa-override", requested="rocm").choice
    assert (rocm.backend, rocm.ok) == ("cpu", False)
    assert rocm.reasons[0] == "ROCm requested but unusable"
    assert rocm.reasons[1:] == (
        "HSA_OVERRIDE_GFX_VERSION=11.0.0 makes ROCm run another target's kernels on gfx1151 "
        "(crashes, wrong results): unset it",
    )


def test_amdvlk_only_warns() -> None:
    report = machine_probe("strix-halo-amdvlk")
    assert report.choice.backend == "vulkan"
    assert _has(report.choice.warnings, "AMDVLK: deprecated upstream, 2 GiB")
    assert _has(report.choice.warnings, "AMD_VULKAN_ICD=RADV")
    assert report.pool.source == "gtt"


def test_missing_icd_falls_back_to_cpu_with_the_fix() -> None:
    report = machine_probe("strix-halo-no-icd")
    choice = report.choice
    assert (choice.backend, choice.ok) == ("cpu", True)
    assert _has(choice.reasons, "no Vulkan ICD installed")
    assert _has(choice.reasons, "apt install mesa-vulkan-drivers")
    assert report.pool.source == "ram"
    assert report.pool.budget_bytes == CROW_MEMTOTAL - RESERVE
    vulkan = machine_probe("strix-halo-no-icd", requested="vulkan").choice
    assert (vulkan.backend, vulkan.ok) == ("cpu", False)


def test_llvmpipe_is_never_a_gpu() -> None:
    choice = machine_probe("strix-halo-llvmpipe-only").choice
    assert choice.backend == "cpu"
    assert _has(choice.reasons, "/dev/dri/renderD128 is not accessible")
    assert _has(choice.reasons, "usermod -aG render,video")
    assert _has(choice.reasons, "llvmpipe (LLVM 20.1.2, 256 bits), which llama.cpp never uses")
    rocm = machine_probe("strix-halo-llvmpipe-only", requested="rocm").choice
    assert _has(rocm.reasons, "/dev/kfd not accessible")


def test_llvmpipe_forced_for_testing() -> None:
    report = machine_probe("strix-halo-llvmpipe-only", allow_software_vulkan=True)
    choice = report.choice
    assert (choice.backend, choice.ok) == ("vulkan", True)
    assert choice.env == {"GGML_VK_VISIBLE_DEVICES": "0"}
    assert _has(choice.warnings, "for testing only")
    assert report.pool.source == "vram+gtt"  # 2 GiB carve-out + 105.5 GiB TTM limit
    assert report.pool.budget_bytes == 2 * GIB + 27648000 * 4096


def test_default_gtt_limit() -> None:
    report = machine_probe("strix-halo-default-gtt")
    assert report.choice.backend == "vulkan"
    assert _has(report.choice.reasons, "driver: RADV")  # from ggml's device name, no vulkaninfo
    pool = report.pool
    assert pool.budget_bytes == 16469033 * 4096  # 62.8 GiB, far below the 125.6 GiB of RAM
    assert _has(pool.reasons, "TTM pages_limit 16469033")
    assert _has(pool.suggestions, "ttm.pages_limit=31719424 (121 GiB")


def test_96g_carve_out() -> None:
    report = machine_probe("strix-halo-carveout-96g")
    assert report.choice.backend == "vulkan"
    pool = report.pool
    assert pool.source == "vram+gtt"
    assert pool.budget_bytes == 96 * GIB + 4058844 * 4096
    assert _has(pool.reasons, "not double-counted")
    assert _has(pool.suggestions, "AMD recommends the minimum (512 MB)")


def test_no_amd_gpu() -> None:
    report = machine_probe("no-amd-gpu")
    choice = report.choice
    assert (choice.backend, choice.ok) == ("cpu", True)
    assert choice.reasons == ("no usable GPU backend", "no GPU found (no /dev/dri render node)")
    assert not report.facts.strix_halo
    assert report.pool.source == "ram"
    assert report.pool.budget_bytes == 24684084 * KIB - RESERVE
    rocm = machine_probe("no-amd-gpu", requested="rocm").choice
    assert (rocm.backend, rocm.ok) == ("cpu", False)
    assert _has(rocm.reasons, "no ROCm/HIP backend")
    assert _has(rocm.reasons, "no gfx1151 GPU")


def test_explicit_budget_overrides_every_machine() -> None:
    report = machine_probe("strix-halo-carveout-96g", memory_budget=40 * GIB)
    assert (report.pool.budget_bytes, report.pool.source) == (40 * GIB, "explicit")


def test_reports_are_json_able() -> None:
    data = machine_probe("strix-halo-healthy").to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["choice"]["backend"] == "vulkan"
    assert data["facts"]["strix_halo"] is True
    assert data["pool"]["budget_bytes"] == CROW_MEMTOTAL - RESERVE

from __future__ import annotations

from app.hardware.report import format_report
from tests.unit.hardware.helpers import machine_probe


def test_healthy_report_has_every_section() -> None:
    text = format_report(machine_probe("strix-halo-healthy"))
    for needle in (
        "Machine",
        "Strix Halo     yes",
        "KFD GPU nodes  node 1: gfx1151 (80 SIMDs)",
        "ttm.pages_limit=32505856 (124.0 GiB)",
        "GPU0: AMD Radeon Graphics (RADV GFX1151) (INTEGRATED_GPU, radv",
        "gfx1151 (AMD Radeon Graphics), pool 124.0 GiB",
        "backends       ROCm, Vulkan, CPU",
        "choice         vulkan (requested auto: ok)",
        "n_gpu_layers=-1 use_mmap=False flash_attn=True",
        "Memory pool",
    ):
        assert needle in text, needle
    assert "Probe errors" not in text


def test_failed_request_is_loud() -> None:
    text = format_report(machine_probe("strix-halo-old-kernel", requested="rocm"))
    assert "choice         cpu (requested rocm: REQUESTED BACKEND UNUSABLE)" in text
    assert "rocminfo       not available" in text


def test_suggestions_and_env_are_shown() -> None:
    gtt = format_report(machine_probe("strix-halo-default-gtt"))
    assert "> the GTT limit (62.8 GiB) is far below the RAM" in gtt
    forced = format_report(machine_probe("strix-halo-llvmpipe-only", allow_software_vulkan=True))
    assert "env            GGML_VK_VISIBLE_DEVICES=0" in forced
    assert "/dev/dri/renderD128 NOT accessible" in forced

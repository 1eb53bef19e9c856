"""Policy edges not covered by a fixture machine."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.hardware.choice import choose_backend
from app.hardware.llama_build import LlamaBuild, parse_llama_devices
from app.hardware.os_facts import OsFacts, read_os_facts
from app.hardware.rocminfo import parse_rocminfo
from app.hardware.vulkan import parse_vulkaninfo
from tests.unit.hardware.helpers import MACHINES, command_text, data_text


def healthy() -> tuple[OsFacts, LlamaBuild]:
    facts = read_os_facts(
        MACHINES / "strix-halo-healthy", kernel="6.17.0-35-generic", env={}, open_check=False
    )
    return facts, parse_llama_devices(command_text("strix-halo-healthy", "llama-devices.json"))


def test_unknown_request_is_an_error() -> None:
    facts, build = healthy()
    with pytest.raises(ValueError, match="unknown backend 'cuda'"):
        choose_backend(facts, build, requested="cuda")


def test_build_not_inspected() -> None:
    facts, _ = healthy()
    auto = choose_backend(facts, None, build_error="the llama.cpp device listing timed out")
    assert (auto.backend, auto.ok) == ("cpu", True)
    assert auto.reasons == ("the llama.cpp device listing timed out",)
    assert not choose_backend(facts, None, requested="vulkan").ok


def test_auto_takes_rocm_when_vulkan_is_not_in_the_build() -> None:
    facts, build = healthy()
    hip_only = replace(
        build,
        backends=("ROCm", "CPU"),
        devices=tuple(d for d in build.devices if d.backend != "Vulkan"),
    )
    choice = choose_backend(facts, hip_only)
    assert choice.backend == "rocm"
    assert choice.reasons[0] == "ROCm: Vulkan is not usable here and every ROCm check passed"


def test_both_radv_and_amdvlk_installed_selects_radv() -> None:
    facts, build = healthy()
    amdvlk = parse_vulkaninfo(command_text("strix-halo-amdvlk", "vulkaninfo-summary.txt"))
    radv = parse_vulkaninfo(command_text("strix-halo-healthy", "vulkaninfo-summary.txt"))
    choice = choose_backend(facts, build, vulkan=radv + amdvlk)
    assert choice.env == {"AMD_VULKAN_ICD": "RADV"}
    assert choice.warnings == ()


def test_small_rocm_pool_is_flagged() -> None:
    facts, build = healthy()
    text = data_text("rocminfo-gmktec-evo-x2.txt").replace(
        "67108864(0x4000000)", "16252928(0xf80000)"
    )
    choice = choose_backend(facts, build, requested="rocm", rocm=parse_rocminfo(text))
    assert choice.backend == "rocm"
    assert any("pool is only 15.5 GiB" in w for w in choice.warnings)


def test_override_11_5_1_is_harmless() -> None:
    facts, build = healthy()
    facts = replace(facts, hsa_override_gfx_version="11.5.1")
    assert choose_backend(facts, build, requested="rocm").backend == "rocm"
    assert choose_backend(facts, build).warnings == ()


def test_lib_path_is_passed_through() -> None:
    facts, build = healthy()
    choice = choose_backend(facts, build, lib_path="/opt/llama/vulkan")
    assert choice.lib_path == "/opt/llama/vulkan"

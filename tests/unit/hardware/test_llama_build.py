from __future__ import annotations

import json
import shutil
import stat
import sys
from pathlib import Path

import pytest

from app.hardware.llama_build import parse_llama_devices, run_llama_devices
from tests.unit.hardware.helpers import command_text


def test_real_cpu_build() -> None:
    build = parse_llama_devices(command_text("no-amd-gpu", "llama-devices.json"))
    assert build.backends == ("CPU",)
    assert not build.supports_gpu_offload
    (cpu,) = build.devices
    assert (cpu.name, cpu.type, cpu.is_gpu) == ("CPU", "CPU", False)
    assert cpu.memory_total == 25276502016
    assert build.has_backend("cpu")
    assert not build.has_backend("Vulkan")
    assert build.gpus("Vulkan") == ()


def test_rocm_vulkan_build() -> None:
    build = parse_llama_devices(command_text("strix-halo-healthy", "llama-devices.json"))
    assert build.backends == ("ROCm", "Vulkan", "CPU")
    assert [d.name for d in build.gpus("Vulkan")] == ["Vulkan0"]
    (rocm,) = build.gpus("rocm")
    assert rocm.memory_total == 126976 * 1024 * 1024
    assert rocm.memory_free is None


def test_backend_named_only_in_system_info() -> None:
    line = json.dumps({"backends": [], "system_info": "ROCm : NO_VMM = 1 | CPU : AVX = 1 |"})
    assert parse_llama_devices(line).has_backend("ROCm")


def test_native_noise_before_the_json_line() -> None:
    text = "ggml_vulkan: No devices found.\n" + json.dumps({"backends": ["Vulkan", "CPU"]}) + "\n"
    assert parse_llama_devices(text).backends == ("Vulkan", "CPU")


@pytest.mark.parametrize("text", ["", "Segmentation fault\n", '{"error": "libllama.so: missing"}'])
def test_unusable_output(text: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_llama_devices(text)


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_runner_times_out(tmp_path: Path) -> None:
    build, error = run_llama_devices(
        {}, timeout=0.2, python=_script(tmp_path, f"exec {shutil.which('sleep')} 5")
    )
    assert build is None
    assert error is not None
    assert "did not finish within 0.2 s" in error


def test_runner_reports_a_crash(tmp_path: Path) -> None:
    build, error = run_llama_devices({}, timeout=5, python=_script(tmp_path, "kill -SEGV $$"))
    assert build is None
    assert error is not None
    assert "signal 11" in error


def test_runner_honours_llama_cpp_lib_path(tmp_path: Path) -> None:
    env = {"LLAMA_CPP_LIB_PATH": str(tmp_path / "nowhere")}
    build, error = run_llama_devices(env, timeout=30, python=sys.executable)
    assert build is None
    assert error is not None
    assert "nowhere" in error

from __future__ import annotations

import shutil
import stat
from pathlib import Path

from app.hardware.commands import fixture_access, fixture_env, run_tool
from tests.unit.hardware.helpers import MACHINES, command_text


def _tool(bin_dir: Path, name: str, body: str) -> dict[str, str]:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return {"PATH": str(bin_dir)}


def test_tool_not_installed(tmp_path: Path) -> None:
    assert run_tool("rocminfo", env={"PATH": str(tmp_path)}, timeout=1) == (None, None)


def test_tool_output(tmp_path: Path) -> None:
    capture = MACHINES / "strix-halo-healthy" / "commands" / "vulkaninfo-summary.txt"
    env = _tool(
        tmp_path / "bin",
        "vulkaninfo",
        f'[ "$1" = --summary ] && exec {shutil.which("cat")} "{capture}"',
    )
    out, error = run_tool("vulkaninfo-summary", env=env, timeout=5)
    assert error is None
    assert out == command_text("strix-halo-healthy", "vulkaninfo-summary.txt")


def test_vulkaninfo_without_a_driver(tmp_path: Path) -> None:
    # What vulkaninfo 1.3.239 does with a loader and no ICD (captured on the build machine).
    env = _tool(
        tmp_path / "bin",
        "vulkaninfo",
        "echo 'ERROR: [Loader Message] Code 0 : vkCreateInstance: Found no drivers!' >&2\n"
        "echo 'ERROR at ./vulkaninfo/vulkaninfo.h:674:vkCreateInstance failed with "
        "ERROR_INCOMPATIBLE_DRIVER' >&2\nexit 1",
    )
    out, error = run_tool("vulkaninfo-summary", env=env, timeout=5)
    assert out == ""
    assert error == (
        "vulkaninfo --summary exited with 1: ERROR at ./vulkaninfo/vulkaninfo.h:674:"
        "vkCreateInstance failed with ERROR_INCOMPATIBLE_DRIVER"
    )


def test_tool_timeout(tmp_path: Path) -> None:
    env = _tool(tmp_path / "bin", "rocminfo", f"exec {shutil.which('sleep')} 5")
    assert run_tool("rocminfo", env=env, timeout=0.2) == (
        None,
        "rocminfo did not finish within 0.2 s",
    )


def test_fixture_env_and_access() -> None:
    assert fixture_env(MACHINES / "strix-halo-hsa-override") == {
        "HSA_OVERRIDE_GFX_VERSION": "11.0.0",
        "ROCBLAS_USE_HIPBLASLT": "1",
    }
    assert fixture_access(MACHINES / "strix-halo-llvmpipe-only") == {
        "/dev/dri/renderD128": False,
        "/dev/kfd": False,
    }
    assert fixture_access(MACHINES / "strix-halo-healthy") == {}

"""The llama.cpp build as ``app.hardware.llama_devices`` reports it: parser and runner.

ggml names its backends ``CPU``, ``Vulkan``, ``ROCm`` (HIP builds, ``GGML_CUDA_NAME``), ``CUDA``,
``RPC``...; devices are ``Vulkan0``, ``ROCm0``... with a type ``CPU``/``GPU``/``IGPU``/``ACCEL``.
Since llama.cpp PR #14099 the Vulkan backend hides CPU-type devices (llvmpipe) unless
``GGML_VK_VISIBLE_DEVICES`` selects them, so a Vulkan build on a box with only llvmpipe reports no
Vulkan device at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from app.hardware.commands import run_bounded

PROJECT_ROOT = Path(__file__).resolve().parents[2]
GPU_TYPES = frozenset({"GPU", "IGPU"})


@dataclass(frozen=True)
class LlamaDevice:
    name: str
    description: str
    type: str
    backend: str
    memory_free: int | None
    memory_total: int | None

    @property
    def is_gpu(self) -> bool:
        return self.type in GPU_TYPES


@dataclass(frozen=True)
class CpuBackend:
    """The CPU backend: ``modules`` (one variant per ISA level, ``variant`` chosen) or
    ``builtin`` (linked in), the features it reports and the AMX execution check."""

    mode: str
    variant: str | None
    reasons: tuple[str, ...]
    variants: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    features: dict[str, str] = field(default_factory=dict)
    amx_verdict: str = "unknown"
    amx_detail: str = ""


@dataclass(frozen=True)
class LlamaBuild:
    lib_dir: str | None
    backends: tuple[str, ...]
    devices: tuple[LlamaDevice, ...]
    supports_gpu_offload: bool
    system_info: str
    cpu: CpuBackend | None = None

    def has_backend(self, name: str) -> bool:
        """Compiled in: a registered backend, or named in ``llama_print_system_info()``."""
        wanted = name.lower()
        return any(b.lower() == wanted for b in self.backends) or any(
            part.split(":")[0].strip().lower() == wanted for part in self.system_info.split("|")
        )

    def gpus(self, backend: str) -> tuple[LlamaDevice, ...]:
        wanted = backend.lower()
        return tuple(d for d in self.devices if d.is_gpu and d.backend.lower() == wanted)


def _opt_int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_map(value: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _parse_cpu(value: object) -> CpuBackend | None:
    if not isinstance(value, dict):
        return None
    amx = value.get("amx") if isinstance(value.get("amx"), dict) else {}
    assert isinstance(amx, dict)
    variants = value.get("variants")
    return CpuBackend(
        mode=str(value.get("mode", "")),
        variant=str(value["variant"]) if value.get("variant") else None,
        reasons=tuple(str(r) for r in value.get("reasons", [])),
        variants={str(k): int(v) for k, v in variants.items() if isinstance(v, int)}
        if isinstance(variants, dict) else {},
        skipped=_str_map(value.get("skipped")),
        features=_str_map(value.get("features")),
        amx_verdict=str(amx.get("verdict", "unknown")),
        amx_detail=str(amx.get("detail", "")),
    )


def parse_llama_devices(text: str) -> LlamaBuild:
    """The JSON line printed by ``python -m app.hardware.llama_devices``.

    Raises ``ValueError`` when there is no such line or it reports an error.
    """
    data: object = None
    try:
        data = json.loads(text)
    except ValueError:  # native code wrote to stdout too: take the last JSON line
        for line in reversed(text.strip().splitlines()):
            if line.lstrip().startswith("{"):
                data = json.loads(line)
                break
    if not isinstance(data, dict):
        raise ValueError("no JSON object in the llama-devices output")
    if data.get("error"):
        raise ValueError(str(data["error"]))
    devices = tuple(
        LlamaDevice(
            name=str(dev.get("name", "")),
            description=str(dev.get("description", "")),
            type=str(dev.get("type", "")),
            backend=str(dev.get("backend", "")),
            memory_free=_opt_int(dev.get("memory_free")),
            memory_total=_opt_int(dev.get("memory_total")),
        )
        for dev in data.get("devices", [])
        if isinstance(dev, dict)
    )
    lib_dir = data.get("lib_dir")
    return LlamaBuild(
        cpu=_parse_cpu(data.get("cpu")),
        lib_dir=str(lib_dir) if lib_dir else None,
        backends=tuple(str(name) for name in data.get("backends", [])),
        devices=devices,
        supports_gpu_offload=bool(data.get("supports_gpu_offload", False)),
        system_info=str(data.get("system_info", "")),
    )


def run_llama_devices(
    env: Mapping[str, str], *, timeout: float, python: str = sys.executable,
    cpu_variant: str | None = None,
) -> tuple[LlamaBuild | None, str | None]:
    """Run the device listing in a subprocess: ``(build, None)`` or ``(None, error)``."""
    child_env = dict(env)
    child_env["PYTHONPATH"] = str(PROJECT_ROOT) + (
        ":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else ""
    )
    try:
        done = run_bounded(
            [python, "-m", "app.hardware.llama_devices",
             *(["--cpu-variant", cpu_variant] if cpu_variant else [])],
            env=child_env,
            cwd=PROJECT_ROOT,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None, f"the llama.cpp device listing did not finish within {timeout:g} s"
    except OSError as exc:
        return None, f"cannot run {python}: {exc}"
    try:
        return parse_llama_devices(done.stdout), None
    except ValueError as exc:
        detail = str(exc)
        if done.returncode < 0:
            detail = f"killed by signal {-done.returncode} ({detail})"
        return None, f"cannot inspect the llama.cpp build: {detail}"

"""``probe()``: gather the facts, choose the backend, size the memory pool.

Cheap and model-free: it reads files under ``root``, runs the llama.cpp device listing in a
subprocess and ``rocminfo`` / ``vulkaninfo --summary`` when they are on PATH, all at once and each
with ``timeout``. With ``run_commands=False`` those outputs come from ``root/commands/`` instead
(fixture machines, see ``commands.py``).
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from app.hardware.choice import BackendChoice, choose_backend
from app.hardware.commands import fixture_access, fixture_text, run_tool
from app.hardware.llama_build import LlamaBuild, parse_llama_devices, run_llama_devices
from app.hardware.os_facts import OsFacts, read_os_facts
from app.hardware.pool import DEFAULT_RESERVE, MemoryPool, compute_pool
from app.hardware.rocminfo import RocmInfo, parse_rocminfo
from app.hardware.vulkan import VulkanDevice, parse_vulkaninfo


@dataclasses.dataclass(frozen=True)
class ProbeReport:
    facts: OsFacts
    llama: LlamaBuild | None
    #: ``None`` when vulkaninfo / rocminfo is not installed (or was not captured).
    vulkan_devices: tuple[VulkanDevice, ...] | None
    rocm: RocmInfo | None
    choice: BackendChoice
    pool: MemoryPool
    #: Problems met while probing (a tool that timed out, say); the probe still completed.
    errors: tuple[str, ...]
    elapsed_seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (for ``halo probe --json`` and ``GET /system``)."""
        result = _jsonable(self)
        assert isinstance(result, dict)
        result["facts"]["strix_halo"] = self.facts.strix_halo
        return result


def _jsonable(value: object) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _gather(
    root: Path, env: Mapping[str, str], run_commands: bool, timeout: float,
    cpu_variant: str | None = None,
) -> tuple[dict[str, str | None], LlamaBuild | None, str | None, list[str]]:
    """Command outputs by fixture name, the llama.cpp build or why not, other errors."""
    errors: list[str] = []
    outputs: dict[str, str | None]
    if not run_commands:
        outputs = {
            name: fixture_text(root, f"{name}.txt")
            for name in ("uname-r", "rocminfo", "vulkaninfo-summary")
        }
        text = fixture_text(root, "llama-devices.json")
        if text is None:
            return outputs, None, "no llama-devices.json captured", errors
        try:
            return outputs, parse_llama_devices(text), None, errors
        except ValueError as exc:
            return outputs, None, f"cannot inspect the llama.cpp build: {exc}", errors
    with ThreadPoolExecutor(max_workers=3) as pool:
        llama = pool.submit(run_llama_devices, env, timeout=timeout, cpu_variant=cpu_variant)
        tools = {
            name: pool.submit(run_tool, name, env=env, timeout=timeout)
            for name in ("rocminfo", "vulkaninfo-summary")
        }
        outputs = {"uname-r": os.uname().release}
        for name, future in tools.items():
            outputs[name], error = future.result()
            if error:
                errors.append(error)
        build, build_error = llama.result()
    return outputs, build, build_error, errors


def probe(
    root: Path = Path("/"),
    *,
    env: Mapping[str, str],
    requested: str = "auto",
    memory_budget: int | None = None,
    run_commands: bool = True,
    timeout: float = 5.0,
    reserve_bytes: int = DEFAULT_RESERVE,
    allow_software_vulkan: bool = False,
    cpu_variant: str | None = None,
) -> ProbeReport:
    """Probe the machine under ``root`` and decide (see the module docstring)."""
    started = time.monotonic()
    outputs, build, build_error, errors = _gather(root, env, run_commands, timeout, cpu_variant)
    kernel = (outputs.get("uname-r") or "").strip() or None
    access = {} if run_commands else fixture_access(root)
    facts = read_os_facts(root, kernel=kernel, env=env, access=access, open_check=run_commands)
    vulkan_text, rocm_text = outputs.get("vulkaninfo-summary"), outputs.get("rocminfo")
    vulkan = parse_vulkaninfo(vulkan_text) if vulkan_text is not None else None
    rocm = parse_rocminfo(rocm_text) if rocm_text is not None else None
    choice = choose_backend(
        facts,
        build,
        requested=requested,
        vulkan=vulkan,
        rocm=rocm,
        build_error=build_error,
        lib_path=env.get("LLAMA_CPP_LIB_PATH") or None,
        allow_software_vulkan=allow_software_vulkan,
    )
    pool = compute_pool(
        facts, backend=choice.backend, reserve_bytes=reserve_bytes, explicit_budget=memory_budget
    )
    return ProbeReport(
        facts=facts,
        llama=build,
        vulkan_devices=vulkan,
        rocm=rocm,
        choice=choice,
        pool=pool,
        errors=tuple(errors) + ((build_error,) if build_error else ()),
        elapsed_seconds=time.monotonic() - started,
    )

"""Load the backend modules of a ``GGML_BACKEND_DL`` llama.cpp build, CPU variant chosen by halo.

Used by the probe subprocess (app/hardware/llama_devices.py) and by every worker before it
loads a model (app/engine/model.py). It talks to the ggml libraries through ctypes only (it does
not import ``llama_cpp``). A build without backend modules (backends linked in) is reported as
``builtin`` and left alone.
"""

from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.hardware.cpu_variants import Variant, VariantChoice, choose_variant, variant_name

# Backend modules other than the CPU variants: loaded when present (GPU and RPC backends).
_OTHER_MODULES = ("libggml-rpc.so", "libggml-vulkan.so", "libggml-hip.so")


@dataclass(frozen=True)
class BackendsLoaded:
    mode: str  # "modules" (GGML_BACKEND_DL build) or "builtin"
    cpu_variant: str | None
    reasons: tuple[str, ...]
    variants: dict[str, int] = field(default_factory=dict)  # installed variant -> score
    skipped: dict[str, str] = field(default_factory=dict)
    modules: tuple[str, ...] = ()
    cpu_features: dict[str, str] = field(default_factory=dict)


class BackendLoadError(Exception):
    """No CPU backend could be chosen or loaded."""


def module_dir(lib_dir: Path) -> Path:
    """Where the backend modules of ``lib_dir``'s build live.

    Beside libggml (halo's Vulkan build, Docker images), or, for a pip-installed
    llama-cpp-python, in ``<site-packages>/bin``: ggml installs its modules to CMake's
    ``bin`` directory, which scikit-build-core puts at the wheel's root.
    """
    for candidate in (lib_dir, lib_dir.parent.parent / "bin"):
        if any(candidate.glob("libggml-cpu-*.so")):
            return candidate
    return lib_dir


def library_path(lib_dir: Path, name: str) -> Path:
    """``lib<name>.so.0`` (the SONAME that libllama links) when present, else ``lib<name>.so``.

    A wheel cannot hold symlinks, so pip installs ``libggml.so``, ``.so.0`` and ``.so.0.x`` as
    separate copies: opening another copy than libllama's would give a second, empty backend
    registry.
    """
    soname = lib_dir / f"lib{name}.so.0"
    return soname if soname.exists() else lib_dir / f"lib{name}.so"


def bind(lib: ctypes.CDLL, name: str, restype: Any, argtypes: list[Any]) -> Any:
    """``lib.name`` with its C signature set (shared by every ctypes user in app/hardware)."""
    func = getattr(lib, name)
    func.restype = restype
    func.argtypes = argtypes
    return func


def _score(path: Path) -> int:
    """The module's own ``ggml_backend_score()`` (0 when absent: not a loadable variant)."""
    try:
        module = ctypes.CDLL(str(path), mode=os.RTLD_LOCAL | os.RTLD_NOW)
    except OSError:
        return 0
    try:
        score = bind(module, "ggml_backend_score", ctypes.c_int, [])
    except AttributeError:
        return 0
    return int(score())


def installed_variants(directory: Path, *, amx_usable: bool) -> list[Variant]:
    """Every ``libggml-cpu-*.so`` with its score; AMX variants are not even opened unless
    ``amx_usable`` (their score would only repeat CPUID's claim)."""
    found = []
    for path in sorted(directory.glob("libggml-cpu-*.so")):
        name = variant_name(path.name)
        if name is None:
            continue
        opened = amx_usable or not Variant(name, 0).uses_amx
        found.append(Variant(name, _score(path) if opened else 0))
    return found


def cpu_features(ggml: ctypes.CDLL) -> dict[str, str]:
    """``ggml_backend_get_features`` of the registered CPU backend (name -> value)."""
    vp, cstr = ctypes.c_void_p, ctypes.c_char_p

    class Feature(ctypes.Structure):
        _fields_ = (("name", cstr), ("value", cstr))

    reg_by_name = bind(ggml, "ggml_backend_reg_by_name", vp, [cstr])
    proc = bind(ggml, "ggml_backend_reg_get_proc_address", vp, [vp, cstr])
    reg = reg_by_name(b"CPU")
    if not reg:
        return {}
    address = proc(reg, b"ggml_backend_get_features")
    if not address:
        return {}
    get = ctypes.CFUNCTYPE(ctypes.POINTER(Feature), vp)(address)
    features: dict[str, str] = {}
    array = get(reg)
    index = 0
    while array[index].name:
        features[array[index].name.decode()] = (array[index].value or b"").decode()
        index += 1
    return features


def _load_others(load: Any, lib_dir: Path, directory: Path) -> list[str]:
    """Register the GPU/RPC backend modules present; their names."""
    loaded = []
    for filename in _OTHER_MODULES:
        path = next((d / filename for d in (lib_dir, directory) if (d / filename).exists()),
                    None)
        if path is not None and load(str(path).encode()):
            loaded.append(filename.removeprefix("libggml-").removesuffix(".so"))
    return loaded


def load_backends(lib_dir: Path, *, amx_usable: bool, forced: str | None = None) -> BackendsLoaded:
    """Register the chosen CPU variant and the other backend modules with ggml (once per
    process). Raises BackendLoadError when no CPU variant can be used."""
    ggml = ctypes.CDLL(str(library_path(lib_dir, "ggml")), mode=ctypes.RTLD_GLOBAL)
    reg_count = bind(ggml, "ggml_backend_reg_count", ctypes.c_size_t, [])
    directory = module_dir(lib_dir)
    if reg_count() > 0:
        return BackendsLoaded("builtin", None, ("the backends are linked into this build",),
                              cpu_features=cpu_features(ggml))
    load = bind(ggml, "ggml_backend_load", ctypes.c_void_p, [ctypes.c_char_p])
    single = lib_dir / "libggml-cpu.so"
    if not any(directory.glob("libggml-cpu-*.so")) and single.exists():
        # one CPU module (GGML_BACKEND_DL without GGML_CPU_ALL_VARIANTS): built for a fixed,
        # host-independent baseline (GGML_NATIVE=OFF), so there is nothing to choose
        if not load(str(single).encode()):
            raise BackendLoadError("ggml could not load its CPU backend module")
        modules = ["cpu", *_load_others(load, lib_dir, directory)]
        return BackendsLoaded("modules", "cpu", ("the build has one CPU module",),
                              modules=tuple(modules), cpu_features=cpu_features(ggml))
    variants = installed_variants(directory, amx_usable=amx_usable)
    choice: VariantChoice = choose_variant(variants, amx_usable=amx_usable, forced=forced)
    if choice.name is None:
        raise BackendLoadError("; ".join(choice.reasons))
    if not load(str(directory / f"libggml-cpu-{choice.name}.so").encode()):
        raise BackendLoadError(f"ggml could not load the CPU variant {choice.name}")
    modules = [f"cpu-{choice.name}", *_load_others(load, lib_dir, directory)]
    return BackendsLoaded(
        "modules", choice.name, choice.reasons,
        variants={v.name: v.score for v in variants}, skipped=choice.skipped,
        modules=tuple(modules), cpu_features=cpu_features(ggml),
    )

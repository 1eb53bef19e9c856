"""Before a worker loads a model: register llama.cpp's backends, CPU variant included.

The front's probe already chose the CPU variant (``WorkerSpec.cpu_variant``); a worker started
without one (tests, tools) runs the AMX check and the choice itself. Must run after
``llama_cpp`` is imported (its libraries are then loaded) and before any model is loaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import llama_cpp.llama_cpp as lc

from app.hardware.amx import check_amx
from app.hardware.ggml_backends import BackendsLoaded, load_backends, module_dir


def lib_dir() -> Path:
    """The directory ``llama_cpp`` loaded its libraries from (``LLAMA_CPP_LIB_PATH`` first)."""
    override = os.environ.get("LLAMA_CPP_LIB_PATH")
    return Path(override) if override else Path(lc.__file__).resolve().parent / "lib"


def register_backends(cpu_variant: str | None) -> BackendsLoaded:
    """Load the chosen CPU variant (or choose one now) and the other backend modules."""
    if cpu_variant:
        return load_backends(lib_dir(), amx_usable=False, forced=cpu_variant)
    libs = lib_dir()
    return load_backends(libs, amx_usable=check_amx(libs, module_dir(libs)).usable)

"""``python -m app.hardware.llama_devices``: what the installed llama.cpp build contains and sees.

Runs in a short-lived subprocess (see ``llama_build.run_llama_devices``) so that a broken GPU
driver can crash or hang only this process, never the server. It is the one module outside
``app/engine`` that touches the llama.cpp libraries, and it does so through ctypes without
importing ``llama_cpp``: the package directory is found with ``importlib.util.find_spec``, and
``LLAMA_CPP_LIB_PATH`` overrides it exactly as in ``llama_cpp/llama_cpp.py``.

Prints one JSON object on stdout::

    {"lib_dir": "...", "backends": ["CPU", "Vulkan"], "supports_gpu_offload": true,
     "system_info": "Vulkan : ... | CPU : ...",
     "devices": [{"name": "Vulkan0", "description": "...", "type": "IGPU",
                  "backend": "Vulkan", "memory_free": 123, "memory_total": 456}]}

Native code may write to stdout, so fd 1 is pointed at stderr while the libraries are in use and
the JSON goes to the original stdout. Exit status 2 and ``{"error": ...}`` when nothing loads.
"""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from app.hardware.amx import check_amx
from app.hardware.ggml_backends import (
    BackendLoadError,
    bind,
    library_path,
    load_backends,
    module_dir,
)

# enum ggml_backend_dev_type in the vendored ggml/include/ggml-backend.h (0.3.36).
DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "IGPU", 3: "ACCEL", 4: "META"}
LIBRARIES = ("ggml-base", "ggml", "llama")


def find_lib_dir(env: Mapping[str, str]) -> Path | None:
    """``$LLAMA_CPP_LIB_PATH``, else ``<site-packages>/llama_cpp/lib`` (without importing it)."""
    override = env.get("LLAMA_CPP_LIB_PATH")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("llama_cpp")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "lib"


def _text(raw: bytes | None) -> str:
    return raw.decode("utf-8", "replace") if raw else ""


def enumerate_devices(lib_dir: Path, cpu_variant: str | None = None) -> dict[str, Any]:
    """Load the libraries of ``lib_dir`` and list ggml's backends and devices."""
    libs = {
        name: ctypes.CDLL(str(library_path(lib_dir, name)), mode=ctypes.RTLD_GLOBAL)
        for name in LIBRARIES
    }
    ggml, llama = libs["ggml"], libs["llama"]
    vp, sz, cstr, bool_ = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_bool
    reg_count = bind(ggml, "ggml_backend_reg_count", sz, [])
    amx = check_amx(lib_dir, module_dir(lib_dir))
    try:
        loaded = load_backends(lib_dir, amx_usable=amx.usable, forced=cpu_variant)
        cpu: dict[str, Any] = {"mode": loaded.mode, "variant": loaded.cpu_variant,
                               "reasons": list(loaded.reasons), "variants": loaded.variants,
                               "skipped": loaded.skipped, "modules": list(loaded.modules),
                               "features": loaded.cpu_features}
    except BackendLoadError as exc:
        cpu = {"mode": "modules", "variant": None, "reasons": [str(exc)]}
    cpu["amx"] = {"verdict": amx.verdict, "detail": amx.detail}
    reg_get = bind(ggml, "ggml_backend_reg_get", vp, [sz])
    reg_name = bind(ggml, "ggml_backend_reg_name", cstr, [vp])
    dev_count = bind(ggml, "ggml_backend_dev_count", sz, [])
    dev_get = bind(ggml, "ggml_backend_dev_get", vp, [sz])
    dev_name = bind(ggml, "ggml_backend_dev_name", cstr, [vp])
    dev_description = bind(ggml, "ggml_backend_dev_description", cstr, [vp])
    dev_type = bind(ggml, "ggml_backend_dev_type", ctypes.c_int, [vp])
    dev_reg = bind(ggml, "ggml_backend_dev_backend_reg", vp, [vp])
    dev_memory = bind(
        ggml, "ggml_backend_dev_memory", None, [vp, ctypes.POINTER(sz), ctypes.POINTER(sz)]
    )
    devices = []
    for index in range(dev_count()):
        dev = dev_get(index)
        free, total = sz(0), sz(0)
        dev_memory(dev, ctypes.byref(free), ctypes.byref(total))
        kind = dev_type(dev)
        devices.append(
            {
                "name": _text(dev_name(dev)),
                "description": _text(dev_description(dev)),
                "type": DEVICE_TYPES.get(kind, str(kind)),
                "backend": _text(reg_name(dev_reg(dev))),
                "memory_free": free.value,
                "memory_total": total.value,
            }
        )
    return {
        "lib_dir": str(lib_dir),
        "cpu": cpu,
        "backends": [_text(reg_name(reg_get(i))) for i in range(reg_count())],
        "devices": devices,
        "supports_gpu_offload": bool(bind(llama, "llama_supports_gpu_offload", bool_, [])()),
        "system_info": _text(bind(llama, "llama_print_system_info", cstr, [])()).strip(),
    }


def main() -> int:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)  # whatever the native libraries print goes to stderr
    lib_dir = find_lib_dir(os.environ)
    try:
        if lib_dir is None:
            raise FileNotFoundError("llama_cpp is not installed and LLAMA_CPP_LIB_PATH is unset")
        variant = sys.argv[sys.argv.index("--cpu-variant") + 1] if "--cpu-variant" in sys.argv \
            else None
        result: dict[str, Any] = enumerate_devices(lib_dir, variant)
        status = 0
    except (OSError, AttributeError) as exc:
        result, status = {"lib_dir": str(lib_dir) if lib_dir else None, "error": str(exc)}, 2
    if "--check" in sys.argv:  # after a build: say which CPU variant this machine gets
        cpu = result.get("cpu") or {}
        if status or (cpu.get("mode") == "modules" and not cpu.get("variant")):
            out.write(f"llama.cpp build check FAILED: {result.get('error') or cpu}\n")
            return 1
        out.write(f"llama.cpp build ok: CPU backend {cpu.get('variant') or cpu.get('mode')}, "
                  f"backends {', '.join(result.get('backends', []))}\n")
        return 0
    out.write(json.dumps(result) + "\n")
    out.flush()
    return status


if __name__ == "__main__":
    sys.exit(main())

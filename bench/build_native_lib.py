"""Build a host-native llama.cpp (``GGML_NATIVE=ON``) as shared libraries, for the bench only.

halo itself never runs a native build (it would carry the build host's ISA, see issue 10); this
one exists to measure what the portable build (CPU variants, chosen at worker start) costs or
saves against ``-march=native`` on the same machine: ``python -m bench.run --servers
halo,halo-native``. The libraries go to ``<bench cache>/llama-native-<version>/lib`` and a worker
uses them through ``LLAMA_CPP_LIB_PATH``. Extra CMake flags (e.g. ``-DGGML_AMX_INT8=OFF`` where
AMX does not execute) come from ``HALO_NATIVE_CMAKE_ARGS``.

    python -m bench.build_native_lib [--jobs N] [--force]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from bench.build_llama_server import LLAMA_CPP_PYTHON_VERSION, cache_root, fetch_source

LIBS = ("libllama.so", "libggml.so", "libggml-base.so", "libggml-cpu.so", "libggml-rpc.so")


def lib_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    return cache_root() / f"llama-native-{version}" / "lib"


def is_built(version: str = LLAMA_CPP_PYTHON_VERSION) -> bool:
    return (lib_dir(version) / ".built").is_file()


def build(version: str = LLAMA_CPP_PYTHON_VERSION, jobs: int | None = None,
          force: bool = False) -> Path:
    """Build (if needed) and return the directory of the native shared libraries."""
    out = lib_dir(version)
    if is_built(version) and not force:
        return out
    started = time.monotonic()
    vendored = fetch_source(version)  # .../llama_cpp_python-<v>/vendor/llama.cpp
    src = vendored.parent.parent  # the sdist's own CMakeLists.txt, as pip builds it
    build_dir = out.parent / "build"
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    extra = shlex.split(os.environ.get("HALO_NATIVE_CMAKE_ARGS", ""))
    subprocess.run(["cmake", "-S", str(src), "-B", str(build_dir), *generator, "-Wno-dev",
                    "-DCMAKE_BUILD_TYPE=Release", "-DGGML_NATIVE=ON", "-DGGML_RPC=ON",
                    "-DLLAVA_BUILD=OFF", f"-DSKBUILD_PLATLIB_DIR={build_dir / 'platlib'}",
                    *extra], check=True)
    subprocess.run(["cmake", "--build", str(build_dir), "--target", "llama", "-j",
                    str(jobs or os.cpu_count() or 2)], check=True)
    built = next(build_dir.rglob("libllama.so")).parent
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    for name in LIBS:
        for path in built.glob(name + "*"):
            shutil.copy2(path, out / path.name, follow_symlinks=False)
    elapsed = time.monotonic() - started
    (out / ".built").write_text(f"GGML_NATIVE=ON {' '.join(extra)} built in {elapsed:.0f}s\n")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--jobs", "-j", type=int, default=None)
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    print(build(jobs=args.jobs, force=args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

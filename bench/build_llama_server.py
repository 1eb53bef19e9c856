"""Build llama.cpp's C++ `llama-server` from the pinned llama-cpp-python sdist, idempotently.

The vendored llama.cpp inside the llama-cpp-python sdist is exactly the engine halo runs, so the
C++ server built from it is the like-for-like reference. The result is cached outside the git
tree (default `~/.cache/halo-bench/llama-server-<version>/llama-server`, override the root with
`HALO_BENCH_CACHE`); a second run finds the stamped binary and does nothing.

    python -m bench.build_llama_server [--jobs N] [--force]
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

LLAMA_CPP_PYTHON_VERSION = "0.3.36"


def cache_root() -> Path:
    env = os.environ.get("HALO_BENCH_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "halo-bench"


def install_dir(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    return cache_root() / f"llama-server-{version}"


def binary_path(version: str = LLAMA_CPP_PYTHON_VERSION) -> Path:
    return install_dir(version) / "llama-server"


def _stamp(version: str) -> Path:
    return install_dir(version) / ".built"


def is_built(version: str = LLAMA_CPP_PYTHON_VERSION) -> bool:
    return binary_path(version).is_file() and _stamp(version).is_file()


def _log(msg: str) -> None:
    print(f"[build-llama-server] {msg}", flush=True)


def _run(cmd: list[str], cwd: Path | None = None) -> None:
    _log("$ " + " ".join(cmd))
    subprocess.run(cmd, cwd=cwd, check=True)


def _safe_extract(archive: Path, dest: Path) -> None:
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def fetch_source(version: str) -> Path:
    """Return the vendored llama.cpp directory of the pinned sdist, downloading it via pip."""
    root = install_dir(version)
    src = root / "src" / f"llama_cpp_python-{version}" / "vendor" / "llama.cpp"
    if (src / "CMakeLists.txt").is_file():
        return src
    sdist_dir = root / "sdist"
    sdist_dir.mkdir(parents=True, exist_ok=True)
    archive = sdist_dir / f"llama_cpp_python-{version}.tar.gz"
    if not archive.is_file():
        _log(f"downloading llama-cpp-python=={version} sdist with pip")
        _run(
            [
                sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                "--progress-bar", "off", "-d", str(sdist_dir),
                f"llama-cpp-python=={version}",
            ]
        )
    if not archive.is_file():
        found = sorted(sdist_dir.glob("llama_cpp_python-*.tar.gz"))
        if not found:
            raise SystemExit(f"pip did not produce an sdist in {sdist_dir}")
        archive = found[0]
    _log(f"extracting {archive.name}")
    tmp = root / "src.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    _safe_extract(archive, tmp)
    shutil.rmtree(root / "src", ignore_errors=True)
    tmp.rename(root / "src")
    if not (src / "CMakeLists.txt").is_file():
        raise SystemExit(f"no vendored llama.cpp at {src}")
    return src


# The ISA of ggml's "zen4" CPU variant, the best one without AMX (halo's portable build picks
# it on an AVX-512 machine whose AMX does not run, and on Strix Halo's Zen 5): an explicit list,
# never GGML_NATIVE, which compiles AMX kernels on a host that advertises AMX even where they
# die with SIGILL (docs/benchmarks.md). HALO_LLAMA_SERVER_CMAKE_ARGS replaces it.
CPU_FLAGS = (
    "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
    "-DGGML_BMI2=ON", "-DGGML_AVX512=ON", "-DGGML_AVX512_VBMI=ON", "-DGGML_AVX512_VNNI=ON",
    "-DGGML_AVX512_BF16=ON", "-DGGML_AMX_TILE=OFF", "-DGGML_AMX_INT8=OFF", "-DGGML_AMX_BF16=OFF",
)


def cpu_flags() -> list[str]:
    env = os.environ.get("HALO_LLAMA_SERVER_CMAKE_ARGS")
    return shlex.split(env) if env else list(CPU_FLAGS)


def build(version: str = LLAMA_CPP_PYTHON_VERSION, jobs: int | None = None,
          force: bool = False) -> Path:
    """Build (if needed) and return the path of the cached llama-server binary."""
    if is_built(version) and not force:
        _log(f"cached: {binary_path(version)}")
        return binary_path(version)
    if shutil.which("cmake") is None:
        raise SystemExit("cmake is required to build llama-server (apt-get install cmake g++)")
    started = time.monotonic()
    src = fetch_source(version)
    build_dir = install_dir(version) / "build"
    jobs = jobs or os.cpu_count() or 2
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    configure = [
        "cmake", "-S", str(src), "-B", str(build_dir), *generator,
        "-DCMAKE_BUILD_TYPE=Release",
        "-DBUILD_SHARED_LIBS=OFF",  # one self-contained binary in the cache
        "-DLLAMA_BUILD_SERVER=ON",
        "-DLLAMA_BUILD_TESTS=OFF",
        "-DLLAMA_BUILD_EXAMPLES=OFF",
        "-DLLAMA_BUILD_UI=OFF",  # no npm
        "-DLLAMA_USE_PREBUILT_UI=OFF",  # no web-UI download at build time
        "-DLLAMA_OPENSSL=OFF",
        "-DLLAMA_CURL=OFF",
        *cpu_flags(),
    ]
    _log(f"configuring {src} -> {build_dir}")
    _run(configure)
    _log(f"building target llama-server with -j{jobs} (about 10 minutes on 2 cores)")
    _run(["cmake", "--build", str(build_dir), "--target", "llama-server", "-j", str(jobs)])
    built = build_dir / "bin" / "llama-server"
    if not built.is_file():
        raise SystemExit(f"build finished but {built} is missing")
    dest = binary_path(version)
    shutil.copy2(built, dest)
    elapsed = time.monotonic() - started
    _stamp(version).write_text(f"built in {elapsed:.0f}s from {src}\n")
    _log(f"done in {elapsed / 60:.1f} min: {dest}")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", default=LLAMA_CPP_PYTHON_VERSION)
    parser.add_argument("--jobs", "-j", type=int, default=None)
    parser.add_argument("--force", action="store_true", help="rebuild even if cached")
    args = parser.parse_args(argv)
    print(build(args.version, args.jobs, args.force))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

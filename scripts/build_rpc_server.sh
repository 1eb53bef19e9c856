#!/usr/bin/env bash
# Build llama.cpp's `rpc-server` from the vendored sources of the installed llama-cpp-python,
# running on that same build's libraries (so its RPC protocol always matches halo's workers).
#
#   scripts/build_rpc_server.sh        # -> .cache/rpc/bin/rpc-server (+ symlinks to the libs)
#   .cache/rpc/bin/rpc-server -H 127.0.0.1 -p 50052
#
# `halo node` does not need this program (it runs the same server in-process, with --mem and
# the probe's backend choice); it is for boxes where you want the plain upstream tool.
#
# Only the executable is compiled (portable flags, GGML_NATIVE=OFF, GGML_BACKEND_DL=ON,
# GGML_CPU=OFF: no CPU kernels, about a minute). bin/ then holds symlinks to the venv's
# libggml-base/libggml/libggml-rpc and backend modules. rpc-server calls
# ggml_backend_load_all(), which picks the best-scoring libggml-cpu-<variant>.so in the
# executable's directory (and the current directory, so the wrapper runs it from bin/). The AMX
# variant (sapphirerapids) is linked only when halo's AMX check (app/hardware/amx.py) sees tile
# instructions execute: CPUs that advertise AMX without the kernel enabling it die with SIGILL
# on the first large batch. HALO_RPC_AMX=0/1 overrides the check.
#
# Environment: HALO_RPC_DIR (default <repo>/.cache/rpc), LLAMA_CPP_VERSION (0.3.36),
# LLAMA_CPP_SDIST (a local sdist instead of `pip download`), PYTHON (default .venv/bin/python),
# LLAMA_LIB_DIR (default: the lib/ of the installed llama_cpp package), JOBS (default nproc).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HALO_RPC_DIR:-$ROOT/.cache/rpc}
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
JOBS=${JOBS:-$(nproc)}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
SRC=$CACHE/src/llama_cpp_python-$VERSION
BUILD=$CACHE/build
BIN=$CACHE/bin

step() { printf '\n==> [build_rpc_server] %s\n' "$*"; }
die() { printf 'build_rpc_server: error: %s\n' "$*" >&2; exit 1; }

LIBDIR=${LLAMA_LIB_DIR:-$("$PYTHON" -c 'import importlib.util, pathlib
spec = importlib.util.find_spec("llama_cpp")
print(pathlib.Path(spec.origin).parent / "lib" if spec and spec.origin else "")')}
[[ -n $LIBDIR && -d $LIBDIR ]] || die "llama_cpp is not installed for $PYTHON (run make install)"
[[ -e $LIBDIR/libggml-rpc.so ]] || compgen -G "$LIBDIR/libggml*.so" >/dev/null ||
    die "no ggml libraries in $LIBDIR"

if [[ ! -x $BUILD/bin/ggml-rpc-server ]]; then
    if [[ ! -d $SRC ]]; then
        step "sources of llama-cpp-python $VERSION"
        mkdir -p "$CACHE/src"
        sdist=${LLAMA_CPP_SDIST:-}
        if [[ -z $sdist ]]; then
            "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
                "llama-cpp-python==$VERSION" -d "$CACHE/src"
            sdist=$CACHE/src/llama_cpp_python-$VERSION.tar.gz
        fi
        tar -xzf "$sdist" -C "$CACHE/src"
    fi
    step "configure (GGML_NATIVE=OFF GGML_BACKEND_DL=ON GGML_CPU=OFF GGML_RPC=ON)"
    cmake -S "$SRC/vendor/llama.cpp" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
        -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU=OFF \
        -DGGML_RPC=ON -DGGML_OPENMP=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_TESTS=OFF \
        -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_OPENSSL=OFF \
        -DCMAKE_BUILD_RPATH='$ORIGIN' >/dev/null
    step "build target ggml-rpc-server ($JOBS jobs)"
    cmake --build "$BUILD" --target ggml-rpc-server -j "$JOBS" >/dev/null
fi

if [[ -z ${HALO_RPC_AMX:-} ]]; then
    HALO_RPC_AMX=0
    if (cd "$ROOT" && "$PYTHON" -c 'import sys, pathlib
from app.hardware.amx import check_amx
from app.hardware.ggml_backends import module_dir
libs = pathlib.Path(sys.argv[1])
sys.exit(0 if check_amx(libs, module_dir(libs)).usable else 1)' "$LIBDIR") 2>/dev/null; then
        HALO_RPC_AMX=1
    fi
fi
step "install into $BIN (libraries from $LIBDIR; AMX variant: $HALO_RPC_AMX)"
rm -rf "$BIN"
mkdir -p "$BIN"
cp "$BUILD/bin/ggml-rpc-server" "$BIN/rpc-server.bin"
# The wrapper: SIGPIPE ignored (llama.cpp's server sends without MSG_NOSIGNAL, so a client
# that leaves before its reply, e.g. `halo probe --nodes` while the node is busy, would kill
# it; SIG_IGN survives exec), and run from bin/ so the current directory adds no modules.
cat > "$BIN/rpc-server" <<'WRAPPER'
#!/bin/sh
trap '' PIPE
cd "$(dirname "$(readlink -f "$0")")" || exit 1
exec ./rpc-server.bin "$@"
WRAPPER
chmod +x "$BIN/rpc-server"
# pip puts ggml's backend modules in <site-packages>/bin (CMake's bin at the wheel's root)
MODDIR=$LIBDIR
if ! compgen -G "$LIBDIR/libggml-cpu*.so" >/dev/null && compgen -G "$LIBDIR/../../bin/libggml-cpu*.so" >/dev/null; then
    MODDIR=$(cd "$LIBDIR/../../bin" && pwd)
fi
for lib in "$LIBDIR"/lib*.so* "$MODDIR"/libggml-cpu*.so; do
    [[ -e $lib && ! -e $BIN/$(basename "$lib") ]] || continue
    name=$(basename "$lib")
    case $name in
        libggml-cpu-sapphirerapids.so) [[ ${HALO_RPC_AMX:-0} == 1 ]] || continue ;;
        libllama*|libmtmd*) continue ;;
    esac
    ln -s "$lib" "$BIN/$name"
done
for name in libggml libggml-base; do  # the executable asks for the versioned soname
    [[ -e $BIN/$name.so.0 || ! -e $BIN/$name.so ]] || ln -s "$LIBDIR/$name.so" "$BIN/$name.so.0"
done
"$BIN/rpc-server" --help >/dev/null 2>&1 || die "$BIN/rpc-server does not run"
echo "rpc-server: $BIN/rpc-server"

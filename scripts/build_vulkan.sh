#!/usr/bin/env bash
# Build the Vulkan variant of llama-cpp-python's llama.cpp into a directory of its own.
#
#   scripts/build_vulkan.sh            # -> .cache/llama-vulkan/lib/{libllama,libggml*}.so
#   LLAMA_CPP_LIB_PATH=.cache/llama-vulkan/lib GGML_VK_VISIBLE_DEVICES=0 <worker>
#
# The installed llama_cpp Python package stays the CPU build; a worker started with
# LLAMA_CPP_LIB_PATH pointing at the lib/ directory loads this build instead (llama_cpp.py
# loads $LLAMA_CPP_LIB_PATH/libllama.so; its libggml*.so are found through RUNPATH $ORIGIN).
#
# Steps, each skipped when already done (re-running after a success only checks the packages):
#   1. Debian packages: mesa-vulkan-drivers from bookworm-backports (Mesa 25: llvmpipe, RADV),
#      libvulkan1, glslc, vulkan-tools. Debian 12's own libvulkan-dev (1.3.239) is too old.
#   2. Debian 13 (trixie) libvulkan-dev and spirv-headers, fetched with `apt-get download`
#      through a private apt configuration (a temporary trixie source list in a scratch
#      directory, deleted afterwards; the system's sources are never touched) and unpacked
#      with `dpkg -x` into $CACHE/sdk. Nothing from trixie is installed.
#   3. The llama-cpp-python sdist (same version as the Makefile's), configured with the
#      sdist's own top-level CMakeLists.txt (as pip would) plus -DGGML_VULKAN=ON, and only the
#      shared libraries built (target llama; LLAVA_BUILD=OFF, so no libmtmd: text models only),
#      then copied to $CACHE/lib.
#
# Environment: HALO_VULKAN_DIR (default <repo>/.cache/llama-vulkan), LLAMA_CPP_VERSION (0.3.36),
# LLAMA_CPP_SDIST (a local llama_cpp_python-<version>.tar.gz instead of `pip download`),
# PYTHON (default <repo>/.venv/bin/python, else python3), JOBS (default nproc).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${HALO_VULKAN_DIR:-$ROOT/.cache/llama-vulkan}
VERSION=${LLAMA_CPP_VERSION:-0.3.36}
JOBS=${JOBS:-$(nproc)}
if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $ROOT/.venv/bin/python ]]; then PYTHON=$ROOT/.venv/bin/python; else PYTHON=python3; fi
fi
SDK=$CACHE/sdk
LIB=$CACHE/lib
STAMP=$LIB/.built
SRC=$CACHE/src/llama_cpp_python-$VERSION
BUILD=$CACHE/build
MESA_MIN=25
BACKPORTS_LIST=/etc/apt/sources.list.d/bookworm-backports.list
TRIXIE_PACKAGES=(libvulkan-dev spirv-headers)
LIBS=(libllama libggml libggml-base)  # plus every backend module libggml-*.so (see step 4)
# The Makefile passes its CMAKE_ARGS_vulkan (portable: GGML_NATIVE=OFF, CPU variants as modules)
CMAKE_FLAGS=${CMAKE_ARGS:--DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON -DGGML_VULKAN=ON}

step() { printf '\n==> [build_vulkan] %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf 'build_vulkan: error: %s\n' "$*" >&2; exit 1; }

if [[ $(id -u) -eq 0 ]]; then SUDO=(); else SUDO=(sudo); fi

pkg_version() {  # installed version of a Debian package, or nothing
    { dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null || true; } |
        awk '$1 == "ii" { print $2 }'
}

wanted_stamp() {
    printf 'llama-cpp-python=%s mesa-vulkan-drivers=%s libvulkan-dev=%s cmake=%s\n' \
        "$VERSION" "$(pkg_version mesa-vulkan-drivers)" "$(cat "$SDK/.version" 2>/dev/null)" \
        "$CMAKE_FLAGS"
}

started=$(date +%s)

# --- 1. Debian packages (checked on every run: the libraries need them at run time) ------
step "1/4 Debian packages: mesa-vulkan-drivers (>= $MESA_MIN, bookworm-backports), libvulkan1, glslc, vulkan-tools"
command -v apt-get >/dev/null || die "apt-get not found: this script targets Debian 12 (bookworm)"
mesa=$(pkg_version mesa-vulkan-drivers)
missing=()
for pkg in libvulkan1 glslc vulkan-tools; do
    [[ -n $(pkg_version "$pkg") ]] || missing+=("$pkg")
done
if [[ -z $mesa ]] || dpkg --compare-versions "$mesa" lt "$MESA_MIN"; then
    if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
        note "adding bookworm-backports ($BACKPORTS_LIST)"
        echo 'deb http://deb.debian.org/debian bookworm-backports main' |
            "${SUDO[@]}" tee "$BACKPORTS_LIST" >/dev/null
    fi
    note "apt-get update"
    "${SUDO[@]}" apt-get update -q
    note "installing mesa-vulkan-drivers from bookworm-backports (installed: ${mesa:-none})"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends -t bookworm-backports mesa-vulkan-drivers
elif [[ ${#missing[@]} -gt 0 ]]; then
    "${SUDO[@]}" apt-get update -q
fi
if [[ ${#missing[@]} -gt 0 ]]; then
    note "installing ${missing[*]}"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
note "mesa-vulkan-drivers $(pkg_version mesa-vulkan-drivers), libvulkan1 $(pkg_version libvulkan1)," \
    "glslc $(pkg_version glslc), vulkan-tools $(pkg_version vulkan-tools)"
LOADER=$(dpkg-query -L libvulkan1 | grep -E '/libvulkan\.so\.1$' | head -n1)
[[ -n $LOADER ]] || die "libvulkan.so.1 not found in package libvulkan1"

if [[ -f $STAMP && -f $LIB/libllama.so && -f $LIB/libggml-vulkan.so ]] &&
    head -n1 "$STAMP" | grep -q "^llama-cpp-python=$VERSION " &&
    head -n1 "$STAMP" | grep -qF "cmake=$CMAKE_FLAGS"; then
    step "already built: $LIB"
    note "$(head -n1 "$STAMP")"
    note "$(sed -n 2p "$STAMP")"
    exit 0
fi

# --- 2. trixie Vulkan headers, unpacked privately ---------------------------------------
step "2/4 Vulkan 1.4 headers from Debian 13 (download only, unpacked into $SDK)"
if [[ -f $SDK/.version && -f $SDK/usr/include/vulkan/vulkan.hpp &&
    -f $SDK/usr/include/spirv/unified1/spirv.hpp ]]; then
    note "already unpacked: libvulkan-dev $(cat "$SDK/.version")"
else
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    mkdir -p "$scratch/lists/partial" "$scratch/cache/archives/partial" "$scratch/parts" \
        "$scratch/debs"
    # The only trixie source line: in the scratch directory, used for this download only.
    echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]' \
        'http://deb.debian.org/debian trixie main' >"$scratch/sources.list"
    apt_private=(
        -o "Dir::Etc::SourceList=$scratch/sources.list"
        -o "Dir::Etc::SourceParts=$scratch/parts"
        -o "Dir::State::Lists=$scratch/lists"
        -o "Dir::Cache=$scratch/cache"
        -o "Acquire::Languages=none"
        -o "APT::Sandbox::User=root"
        -o "Debug::NoLocking=1"
    )
    note "apt-get update (private trixie source list)"
    apt-get "${apt_private[@]}" update -q
    note "apt-get download ${TRIXIE_PACKAGES[*]}"
    (cd "$scratch/debs" && apt-get "${apt_private[@]}" download "${TRIXIE_PACKAGES[@]}")
    rm -rf "$SDK"
    mkdir -p "$SDK"
    for deb in "$scratch"/debs/*.deb; do
        note "dpkg -x $(basename "$deb")"
        dpkg -x "$deb" "$SDK"
    done
    dpkg-deb -f "$scratch"/debs/libvulkan-dev_*.deb Version >"$SDK/.version"
    rm -rf "$scratch"
    trap - EXIT
    note "the trixie source list is gone with the scratch directory"
    [[ -f $SDK/usr/include/vulkan/vulkan.hpp ]] || die "no vulkan/vulkan.hpp in libvulkan-dev"
fi

# --- 3. llama-cpp-python sdist ----------------------------------------------------------
step "3/4 llama-cpp-python $VERSION sources"
if [[ -f $SRC/CMakeLists.txt && -d $SRC/vendor/llama.cpp/ggml/src/ggml-vulkan ]]; then
    note "already unpacked: $SRC"
else
    mkdir -p "$CACHE/src"
    tarball=${LLAMA_CPP_SDIST:-}
    if [[ -z $tarball ]]; then
        note "pip download llama-cpp-python==$VERSION (sdist)"
        "$PYTHON" -m pip download --quiet --no-deps --no-binary :all: \
            --dest "$CACHE/src" "llama-cpp-python==$VERSION"
        tarball=$CACHE/src/llama_cpp_python-$VERSION.tar.gz
    fi
    [[ -f $tarball ]] || die "sdist not found: $tarball"
    rm -rf "$SRC"
    tar -xzf "$tarball" -C "$CACHE/src"
    [[ -f $SRC/CMakeLists.txt ]] || die "unexpected sdist layout: no $SRC/CMakeLists.txt"
fi

# --- 4. build ---------------------------------------------------------------------------
step "4/4 cmake build with $CMAKE_FLAGS ($JOBS jobs; 15 to 25 minutes on 2 cores)"
generator=()
if command -v ninja >/dev/null; then generator=(-G Ninja); fi
# Configuring again is quick and keeps an interrupted or failed configure from sticking.
cmake -S "$SRC" -B "$BUILD" "${generator[@]}" -Wno-dev \
    -DCMAKE_BUILD_TYPE=Release \
    $CMAKE_FLAGS \
    -DVulkan_INCLUDE_DIR="$SDK/usr/include" \
    -DVulkan_LIBRARY="$LOADER" \
    -DSPIRV-Headers_DIR="$SDK/usr/share/cmake/SPIRV-Headers" \
    -DLLAVA_BUILD=OFF \
    -DSKBUILD_PLATLIB_DIR="$BUILD/platlib"
build_started=$(date +%s)
cmake --build "$BUILD" --target llama --parallel "$JOBS"
build_seconds=$(($(date +%s) - build_started))

out=$(dirname "$(find "$BUILD" -name 'libllama.so' -print -quit)")
[[ -n $out && -f $out/libggml-vulkan.so ]] || die "libggml-vulkan.so was not built"
rm -rf "$LIB.tmp"
mkdir -p "$LIB.tmp"
for name in "${LIBS[@]}"; do
    cp -P "$out/$name".so* "$LIB.tmp/"
done
# backend modules (GGML_BACKEND_DL): the CPU variants, Vulkan, RPC; the worker loads them
find "$out" "$BUILD/bin" -maxdepth 1 -name 'libggml-*.so*' ! -name 'libggml-base.so*' \
    -exec cp -P {} "$LIB.tmp/" \; 2>/dev/null || true
ls "$LIB.tmp"/libggml-cpu*.so >/dev/null || die "no CPU backend module was built"
{
    wanted_stamp
    echo "built $(date -u +%Y-%m-%dT%H:%M:%SZ) in ${build_seconds}s (cmake --build, $JOBS jobs)"
} >"$LIB.tmp/.built"
rm -rf "$LIB"
mv "$LIB.tmp" "$LIB"

step "done in $(($(date +%s) - started))s: $LIB"
ls -l "$LIB"
if [[ -f $ROOT/app/hardware/llama_devices.py ]]; then
    note "llama.cpp devices with GGML_VK_VISIBLE_DEVICES=0:"
    (cd "$ROOT" && LLAMA_CPP_LIB_PATH=$LIB GGML_VK_VISIBLE_DEVICES=0 \
        "$PYTHON" -m app.hardware.llama_devices 2>/dev/null) || note "(device listing failed)"
fi

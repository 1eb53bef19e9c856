# syntax=docker/dockerfile:1
# halo in a container. Build from the repo root:
#   docker build --build-arg BACKEND=vulkan -t halo:vulkan .      # vulkan | rocm | cpu
# or use deploy/docker-compose.yml (halo + Prometheus + Grafana). Models are not baked in:
# mount a directory of *.gguf files at /models (read-only is fine).
#
# The llama-cpp-python build mirrors the Makefile's `install` target (same pin, same
# CMAKE_ARGS per backend); tests/deploy/test_dockerfile.py fails if the two drift apart.
#
# Stages: toolchain-<backend> (compilers + GPU SDK) -> build (venv with llama-cpp-python and
# halo) -> runtime-<backend> (only runtime libraries) -> final. BuildKit builds only the
# stages the chosen BACKEND needs.

ARG BACKEND=vulkan
# Debian trixie: Mesa 25 (RADV supports the Strix Halo iGPU, gfx1151) and Vulkan 1.4 headers.
ARG PYTHON_IMAGE=python:3.11-slim-trixie
# ROCm 6.4+ is the first with gfx1151; the -complete image carries hipBLAS/rocBLAS.
ARG ROCM_IMAGE=rocm/dev-ubuntu-24.04:6.4.1-complete

# ---- toolchains ------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS toolchain-cpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

FROM toolchain-cpu AS toolchain-vulkan
RUN apt-get update \
    && apt-get install -y --no-install-recommends libvulkan-dev glslc \
    && rm -rf /var/lib/apt/lists/*

FROM ${ROCM_IMAGE} AS toolchain-rocm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv python3-dev \
        build-essential cmake \
    && rm -rf /var/lib/apt/lists/*

# ---- build: a venv with llama-cpp-python (compiled for BACKEND) and halo ----------------
FROM toolchain-${BACKEND} AS build
ARG BACKEND
ARG LLAMA_CPP_VERSION=0.3.36
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv /opt/halo
ENV PATH=/opt/halo/bin:$PATH
RUN pip install --no-cache-dir --upgrade pip
# Same CMAKE_ARGS as the Makefile's CMAKE_ARGS_<backend>: portable, nothing compiled for the
# build host (GGML_NATIVE=OFF), the CPU backend as one module per ISA level so the image runs on
# any x86-64 (an AMX build host, a Zen 5 Strix Halo); the worker picks the variant at start.
RUN case "$BACKEND" in \
        cpu) cmake_args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON" ;; \
        vulkan) cmake_args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON -DGGML_VULKAN=ON" ;; \
        rocm) cmake_args="-DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON -DGGML_HIP=ON -DGPU_TARGETS=gfx1151" ;; \
        *) echo "BACKEND must be cpu, vulkan or rocm, not '$BACKEND'" >&2; exit 1 ;; \
    esac \
    && echo "building llama-cpp-python ${LLAMA_CPP_VERSION} with CMAKE_ARGS='$cmake_args'" \
    && CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" \
        pip install --no-cache-dir "llama-cpp-python==${LLAMA_CPP_VERSION}"
# llama.cpp's rpc-server on those same libraries, as `make rpc-server` builds it (for boxes
# that serve RPC with the plain tool; `halo node` runs the same server in-process).
COPY scripts/build_rpc_server.sh /tmp/build_rpc_server.sh
RUN HALO_RPC_DIR=/opt/halo/rpc PYTHON=/opt/halo/bin/python LLAMA_CPP_VERSION="${LLAMA_CPP_VERSION}" \
        bash /tmp/build_rpc_server.sh \
    && rm -rf /opt/halo/rpc/src /opt/halo/rpc/build
# Then the project itself with its runtime dependencies, as `make install` does
# (not editable here: the image carries no source tree).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
RUN pip install --no-cache-dir . \
    && pip check \
    && cd / && python -c "import app.factory"

# ---- runtimes ----------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime-cpu
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

FROM runtime-cpu AS runtime-vulkan
# RADV (Mesa's Vulkan driver) and the Vulkan loader.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libvulkan1 mesa-vulkan-drivers \
    && rm -rf /var/lib/apt/lists/*

FROM ${ROCM_IMAGE} AS runtime-rocm
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# ---- final -------------------------------------------------------------------------------
FROM runtime-${BACKEND}
ARG BACKEND
COPY --from=build /opt/halo /opt/halo
# A non-root user. GPU access comes from the host's `video`/`render` groups, added at run
# time (docker run --group-add, compose group_add); a `render` group exists here so the name
# resolves, but pass the host's numeric GID when it differs (see docs).
RUN (getent group video >/dev/null || groupadd --system video) \
    && (getent group render >/dev/null || groupadd --system render) \
    && groupadd --system halo \
    && useradd --system --gid halo --groups video,render --create-home --home-dir /home/halo \
        --shell /usr/sbin/nologin halo \
    && mkdir -p /models
LABEL org.opencontainers.image.title="halo" \
      org.opencontainers.image.description="OpenAI-compatible local LLM server (llama.cpp)" \
      io.github.halo.llama-backend="${BACKEND}"
ENV PATH=/opt/halo/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HALO_PORT=8080
USER halo
WORKDIR /home/halo
VOLUME /models
# 8080: the HTTP API; 50052: `halo node` / rpc-server, only on a private link (no auth)
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HALO_PORT', '8080'), timeout=4)"]
# Inside a container 0.0.0.0 is the only useful bind; publish the port on loopback
# (-p 127.0.0.1:8080:8080) or set HALO_API_KEYS. halo logs a warning when no key is set.
CMD ["halo", "serve", "--host", "0.0.0.0", "--models-dir", "/models", "--insecure-no-auth"]

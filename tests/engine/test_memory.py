"""Buffer sizes from llama.cpp log lines and RSS parsing (pure)."""

from __future__ import annotations

import io

from app.engine.memory import LOG_CONT, LOG_DEBUG, LOG_ERROR, LlamaLog, parse_vmrss

MIB = 1024 * 1024

# lines as printed by llama.cpp 0.3.36 for gemma-3-270m (iSWA: two KV caches) on CPU
LOAD_LOG = """\
load_tensors:   CPU_Mapped model buffer size =   235.16 MiB
load_tensors:   CPU_REPACK model buffer size =    12.66 MiB
llama_context:        CPU  output buffer size =     4.00 MiB
llama_kv_cache:        CPU KV buffer size =    12.00 MiB
llama_kv_cache: size =   12.00 MiB (  4096 cells,   3 layers,  4/1 seqs), K (f16):    6.00 MiB
llama_kv_cache:        CPU KV buffer size =    60.00 MiB
sched_reserve:        CPU compute buffer size =   514.50 MiB
llama_model_load_from_file_impl: using device Vulkan0 (Radeon 8060S) (0000:c5:00.0) - 1000 MiB free
"""


def test_buffer_sizes_are_summed_per_kind() -> None:
    log = LlamaLog()
    log.feed(1, LOAD_LOG)
    assert log.sizes.model == round(235.16 * MIB) + round(12.66 * MIB)
    assert log.sizes.kv == 72 * MIB
    assert log.sizes.compute == round(518.5 * MIB)
    assert log.backend_devices() == ("Vulkan0", "CPU")


def test_lines_assembled_across_chunks_and_cont() -> None:
    sink = io.StringIO()
    log = LlamaLog(sink=sink)
    log.feed(1, "llama_kv_cache:        CPU KV buf")
    log.feed(LOG_CONT, "fer size =    90.00 MiB\nnext")
    assert log.sizes.kv == 90 * MIB
    assert sink.getvalue() == "llama_kv_cache:        CPU KV buffer size =    90.00 MiB\n"


def test_debug_lines_ignored_and_errors_kept() -> None:
    log = LlamaLog()
    log.feed(LOG_DEBUG, "sched_reserve: CPU compute buffer size = 1.00 MiB\n")
    log.feed(LOG_ERROR, "llama_model_load: error loading model: bad magic\n")
    assert log.sizes.compute == 0
    assert list(log.errors) == ["llama_model_load: error loading model: bad magic"]
    assert log.backend_devices() == ("CPU",)


def test_parse_vmrss() -> None:
    status = "Name:\tpython\nVmPeak:\t  999 kB\nVmRSS:\t  263332 kB\nThreads:\t3\n"
    assert parse_vmrss(status) == 263332 * 1024
    assert parse_vmrss("Name:\tx\n") == 0

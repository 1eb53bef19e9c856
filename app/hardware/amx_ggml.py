"""Child side of the AMX check: run ggml's own AMX matrix kernel once, in this process.

``python -m app.hardware.amx_ggml LIB_DIR MODULE`` loads the AMX CPU variant ``MODULE`` into the
ggml of ``LIB_DIR``, puts a small Q8_0 weight matrix into the variant's AMX buffer type (which
repacks it for the tile kernels, as a model load does) and multiplies it with a 64-row batch:
the path a prompt takes. Prints ``executes`` and exits 0 when it ran; a SIGILL kills only this
process (the parent, app/hardware/amx.py, turns that into the verdict).

A bare ``ldtilecfg``/``tileloadd`` test is not enough: on an Intel Xeon VM of this project the
bare instructions run, yet ggml's kernel dies with SIGILL at its ``tileloadd``.
"""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

from app.hardware.ggml_backends import bind, library_path

GGML_TYPE_F32, GGML_TYPE_Q8_0 = 0, 8
Q8_0_BLOCK_BYTES, Q8_0_BLOCK = 34, 32
K, N, M = 256, 64, 64  # weight K x N, batch of M rows (M > 1 takes the tile kernel)


class InitParams(ctypes.Structure):
    _fields_ = (("mem_size", ctypes.c_size_t), ("mem_buffer", ctypes.c_void_p),
                ("no_alloc", ctypes.c_bool))


def run(lib_dir: Path, module: Path) -> str:
    """Returns "executes", or why the check could not run (a SIGILL never returns)."""
    vp, cs, sz, i64 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int64
    base = ctypes.CDLL(str(library_path(lib_dir, "ggml-base")), mode=ctypes.RTLD_GLOBAL)
    ggml = ctypes.CDLL(str(library_path(lib_dir, "ggml")), mode=ctypes.RTLD_GLOBAL)
    reg = bind(ggml, "ggml_backend_load", vp, [cs])(str(module).encode())
    if not reg:
        return "ggml could not load the AMX variant"
    dev = bind(ggml, "ggml_backend_reg_dev_get", vp, [vp, sz])(reg, 0)
    backend = bind(ggml, "ggml_backend_dev_init", vp, [vp, cs])(dev, None)
    extra_addr = bind(ggml, "ggml_backend_reg_get_proc_address", vp, [vp, cs])(
        reg, b"ggml_backend_dev_get_extra_bufts")
    if not (backend and extra_addr):
        return "the CPU backend offers no extra buffer types"
    extras = ctypes.CFUNCTYPE(ctypes.POINTER(vp), vp)(extra_addr)(dev)
    buft_name = bind(ggml, "ggml_backend_buft_name", cs, [vp])
    amx = None
    index = 0
    while extras[index]:
        if b"AMX" in (buft_name(extras[index]) or b"").upper():
            amx = extras[index]
        index += 1
    if amx is None:
        return "the variant has no AMX buffer type (ggml refused AMX here)"
    init = bind(base, "ggml_init", vp, [InitParams])
    new_2d = bind(base, "ggml_new_tensor_2d", vp, [vp, ctypes.c_int, i64, i64])
    alloc = bind(ggml, "ggml_backend_alloc_ctx_tensors_from_buft", vp, [vp, vp])
    tensor_set = bind(base, "ggml_backend_tensor_set", None, [vp, vp, sz, sz])
    weights_ctx = init(InitParams(1 << 20, None, True))
    weight = new_2d(weights_ctx, GGML_TYPE_Q8_0, K, N)
    if not alloc(weights_ctx, amx):
        return "cannot allocate in the AMX buffer type"
    blob = bytes(range(256)) * (N * K // Q8_0_BLOCK * Q8_0_BLOCK_BYTES // 256 + 1)
    size = N * K // Q8_0_BLOCK * Q8_0_BLOCK_BYTES
    data = bytearray(blob[:size])
    for block in range(size // Q8_0_BLOCK_BYTES):  # fp16 scale 1.0 per block (0x3c00)
        data[block * Q8_0_BLOCK_BYTES: block * Q8_0_BLOCK_BYTES + 2] = b"\x00\x3c"
    buffer = (ctypes.c_char * size).from_buffer(data)
    tensor_set(weight, buffer, 0, size)  # repacked for the tile kernels here
    graph_ctx = init(InitParams(1 << 20, None, True))
    batch = new_2d(graph_ctx, GGML_TYPE_F32, K, M)
    out = bind(base, "ggml_mul_mat", vp, [vp, vp, vp])(graph_ctx, weight, batch)
    graph = bind(base, "ggml_new_graph", vp, [vp])(graph_ctx)
    bind(base, "ggml_build_forward_expand", None, [vp, vp])(graph, out)
    if not alloc(graph_ctx, bind(ggml, "ggml_backend_dev_buffer_type", vp, [vp])(dev)):
        return "cannot allocate the batch"
    ones = (ctypes.c_float * (K * M))(*([1.0] * (K * M)))
    tensor_set(batch, ones, 0, ctypes.sizeof(ones))
    status = bind(ggml, "ggml_backend_graph_compute", ctypes.c_int, [vp, vp])(backend, graph)
    return "executes" if status == 0 else f"the graph failed with status {status}"



if __name__ == "__main__":
    result = run(Path(sys.argv[1]), Path(sys.argv[2]))
    sys.stdout.write(result + "\n")
    sys.exit(0 if result == "executes" else 4)

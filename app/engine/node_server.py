"""`python -m app.engine.node_server`: llama.cpp's RPC server for another box (`halo node`).

The same llama.cpp build as the workers (so the RPC protocol versions match), the same
backend: the first local GPU/iGPU, else the CPU. `--mem` caps the memory the device reports
(halo's ledger and llama.cpp's default split both read it). Prints the device and its memory,
then serves until killed. Started by `halo node` (app/cli_node.py) with the environment the
probe chose (LLAMA_CPP_LIB_PATH, GGML_* variables).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from app.engine import rpc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.engine.node_server")
    parser.add_argument("--endpoint", required=True, help="host:port to listen on")
    parser.add_argument("--mem", type=int, default=None, help="report at most this many bytes")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads")
    parser.add_argument("--cpu", action="store_true", help="serve the CPU even if a GPU exists")
    parser.add_argument("--cpu-variant", default=None, help="CPU backend variant (the probe's)")
    args = parser.parse_args(argv)

    import llama_cpp.llama_cpp as lc

    from app.engine.backends import register_backends
    from app.hardware.ggml_backends import BackendLoadError

    try:
        loaded = register_backends(args.cpu_variant)
    except (BackendLoadError, OSError) as exc:
        print(f"halo node: cannot load llama.cpp's backends: {exc}", file=sys.stderr)
        return 1
    lc.llama_backend_init()
    if loaded.cpu_variant:
        print(f"halo node: CPU variant {loaded.cpu_variant}", flush=True)
    ggml = rpc.Ggml(rpc.libggml())
    try:
        ggml.rpc_proc("ggml_backend_rpc_start_server")
    except rpc.RpcError as exc:
        print(f"halo node: {exc}", file=sys.stderr)
        return 1
    gpus = [] if args.cpu else rpc.local_offload_devices(ggml)
    cpus = [d for d in ggml.devices() if d.type == rpc.DEVICE_TYPE_CPU]
    devices = gpus[:1] or cpus[:1]
    if not devices:
        print("halo node: llama.cpp sees no device", file=sys.stderr)
        return 1
    caps = [rpc.MemoryCap(ggml, d.handle, args.mem) for d in devices if args.mem]
    for dev in devices:
        free, total = ggml.memory(dev.handle)
        print(f"halo node: serving {dev.name} ({dev.description}): {free / 2**30:.2f} GiB free "
              f"of {total / 2**30:.2f} GiB" + (" (capped by --mem)" if caps else ""), flush=True)
    print(f"halo node: listening on {args.endpoint} (llama.cpp RPC protocol "
          f"{rpc_version()})", flush=True)
    threads = args.threads or os.cpu_count() or 1
    server = threading.Thread(target=rpc.serve, args=(ggml, args.endpoint, devices, threads),
                              daemon=True, name="rpc-server")
    server.start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and server.is_alive():
        stop.wait(0.5)
    if not stop.is_set():
        print(f"halo node: the RPC server stopped (is {args.endpoint} in use?)",
              file=sys.stderr, flush=True)
        return 1
    sys.stdout.flush()
    os._exit(0)  # the server thread blocks in accept(); nothing to clean up


def rpc_version() -> str:
    from app.hardware.nodes import RPC_PROTO_MAJOR, RPC_PROTO_MINOR

    return f"{RPC_PROTO_MAJOR}.{RPC_PROTO_MINOR}"


if __name__ == "__main__":
    sys.exit(main())

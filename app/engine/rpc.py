"""llama.cpp's RPC backend through ctypes (llama-cpp-python binds none of it).

Worker side: `connect_nodes` adds one RPC server per node address
(`ggml_backend_rpc_add_server`, reached through the RPC registry's proc address as
ggml-rpc.h intends for GGML_BACKEND_DL builds), registers its devices and returns them in
node order, so the model can be loaded with an explicit device list. Node side: `serve`
runs `ggml_backend_rpc_start_server` for one device, optionally reporting at most `mem_limit`
bytes of memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from app.hardware.nodes import parse_address, query_node

logger = logging.getLogger(__name__)

DEVICE_TYPE_CPU, DEVICE_TYPE_GPU, DEVICE_TYPE_IGPU, DEVICE_TYPE_ACCEL = 0, 1, 2, 3
# ggml-backend-impl.h struct ggml_backend_device_i: get_name, get_description, get_memory, ...
_IFACE_GET_MEMORY = 2
_GET_MEMORY = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                               ctypes.POINTER(ctypes.c_size_t))
_ADD_SERVER = ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_char_p)
_START_SERVER = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_size_t,
                                 ctypes.c_size_t, ctypes.POINTER(ctypes.c_void_p))
# a dead box (no RST) is noticed within about KEEPIDLE + KEEPINTVL * KEEPCNT seconds
_KEEPIDLE, _KEEPINTVL, _KEEPCNT, _USER_TIMEOUT_MS = 1, 1, 2, 4000


class RpcError(Exception):
    """A node cannot be used; the message names it."""


@dataclass(frozen=True)
class Device:
    handle: int
    name: str
    description: str
    type: int


class Ggml:
    """Typed access to the ggml registry functions of one loaded libggml."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        sig: dict[str, tuple[list[Any], Any]] = {
            "ggml_backend_reg_by_name": ([ctypes.c_char_p], ctypes.c_void_p),
            "ggml_backend_reg_get_proc_address": ([ctypes.c_void_p, ctypes.c_char_p],
                                                  ctypes.c_void_p),
            "ggml_backend_reg_dev_count": ([ctypes.c_void_p], ctypes.c_size_t),
            "ggml_backend_reg_dev_get": ([ctypes.c_void_p, ctypes.c_size_t], ctypes.c_void_p),
            "ggml_backend_reg_name": ([ctypes.c_void_p], ctypes.c_char_p),
            "ggml_backend_device_register": ([ctypes.c_void_p], None),
            "ggml_backend_dev_count": ([], ctypes.c_size_t),
            "ggml_backend_dev_get": ([ctypes.c_size_t], ctypes.c_void_p),
            "ggml_backend_dev_name": ([ctypes.c_void_p], ctypes.c_char_p),
            "ggml_backend_dev_description": ([ctypes.c_void_p], ctypes.c_char_p),
            "ggml_backend_dev_type": ([ctypes.c_void_p], ctypes.c_int),
            "ggml_backend_dev_backend_reg": ([ctypes.c_void_p], ctypes.c_void_p),
            "ggml_backend_dev_memory": ([ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                         ctypes.POINTER(ctypes.c_size_t)], None),
        }
        for name, (args, res) in sig.items():
            fn = getattr(lib, name)
            fn.argtypes, fn.restype = args, res

    def rpc_proc(self, name: str) -> int:
        reg = self.lib.ggml_backend_reg_by_name(b"RPC")
        if not reg:
            raise RpcError("this llama.cpp build has no RPC backend (build it with GGML_RPC=ON)")
        addr = self.lib.ggml_backend_reg_get_proc_address(reg, name.encode())
        if not addr:
            raise RpcError(f"the RPC backend does not export {name}")
        return int(addr)

    def device(self, handle: int) -> Device:
        lib = self.lib
        return Device(handle, (lib.ggml_backend_dev_name(handle) or b"").decode(),
                      (lib.ggml_backend_dev_description(handle) or b"").decode(),
                      int(lib.ggml_backend_dev_type(handle)))

    def devices(self) -> list[Device]:
        return [self.device(self.lib.ggml_backend_dev_get(i))
                for i in range(self.lib.ggml_backend_dev_count())]

    def memory(self, handle: int) -> tuple[int, int]:
        free, total = ctypes.c_size_t(), ctypes.c_size_t()
        self.lib.ggml_backend_dev_memory(handle, ctypes.byref(free), ctypes.byref(total))
        return int(free.value), int(total.value)


def local_offload_devices(ggml: Ggml) -> list[Device]:
    """This box's GPU/iGPU devices (the RPC ones excluded), as llama.cpp would offload to."""
    out = []
    for dev in ggml.devices():
        reg = ggml.lib.ggml_backend_dev_backend_reg(dev.handle)
        reg_name = (ggml.lib.ggml_backend_reg_name(reg) or b"").decode() if reg else ""
        if dev.type in (DEVICE_TYPE_GPU, DEVICE_TYPE_IGPU) and not reg_name.startswith("RPC"):
            out.append(dev)
    return out


def check_node(address: str, timeout: float = 5.0) -> None:
    """Fail with the node's name unless it answers HELLO (llama.cpp aborts the process on an
    unreachable server, and waits forever on one that is serving another client)."""
    info = asyncio.run(query_node(address, timeout=timeout))
    if not info.ok:
        raise RpcError(f"RPC node {address} is {info.status}" +
                       (f": {info.error}" if info.error else ""))
    if not info.devices:
        raise RpcError(f"RPC node {address} offers no device")


def connect_nodes(ggml: Ggml, addresses: Sequence[str]) -> list[list[Device]]:
    """Add every node's RPC server; its devices per node, in the order given."""
    for address in addresses:
        check_node(address)
    add_server = _ADD_SERVER(ggml.rpc_proc("ggml_backend_rpc_add_server"))
    out = []
    for address in addresses:
        reg = add_server(address.encode())
        if not reg:
            raise RpcError(f"RPC node {address} offers no device")
        devices = []
        for i in range(ggml.lib.ggml_backend_reg_dev_count(reg)):
            handle = ggml.lib.ggml_backend_reg_dev_get(reg, i)
            ggml.lib.ggml_backend_device_register(handle)
            devices.append(ggml.device(handle))
        out.append(devices)
    return out


def tighten_keepalive(addresses: Sequence[str]) -> int:
    """Turn on TCP keepalive and a user timeout on this process's sockets to the nodes, so
    that a box that vanishes without closing its connections (power, cable) fails the next
    RPC within seconds instead of never. Returns the number of sockets changed. Call it once
    the model is loaded: llama.cpp keeps one connection per node only while buffers on it
    exist (before that each query opens and closes its own)."""
    peers = set()
    for address in addresses:
        host, port = parse_address(address)
        try:
            for info in socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP):
                peers.add((info[4][0], port))
        except OSError:
            continue
    changed = 0
    for fd in _fds():
        try:
            sock = socket.socket(fileno=os.dup(fd))
        except OSError:
            continue
        with sock:
            try:
                if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET,
                                                                          socket.AF_INET6):
                    continue
                peer = sock.getpeername()
            except OSError:
                continue
            if (peer[0], peer[1]) not in peers:
                continue
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, _KEEPIDLE)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, _KEEPINTVL)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, _KEEPCNT)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, _USER_TIMEOUT_MS)
            changed += 1
    return changed


def _fds() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return []


class MemoryCap:
    """Make a device report at most `limit` bytes (free and total) to everyone in this process,
    the RPC server's GET_DEVICE_MEMORY included: its interface's get_memory is swapped for a
    wrapper (the device struct starts with its interface of function pointers)."""

    def __init__(self, ggml: Ggml, handle: int, limit: int) -> None:
        slots = ctypes.cast(handle, ctypes.POINTER(ctypes.c_void_p))
        original = _GET_MEMORY(slots[_IFACE_GET_MEMORY])

        def capped(dev: int, free: Any, total: Any) -> None:
            original(dev, free, total)
            total[0] = min(int(total[0]), limit)
            free[0] = min(int(free[0]), limit)

        self._callback = _GET_MEMORY(capped)  # kept alive as long as the server runs
        slots[_IFACE_GET_MEMORY] = ctypes.cast(self._callback, ctypes.c_void_p).value


def serve(ggml: Ggml, endpoint: str, devices: Sequence[Device], n_threads: int) -> None:
    """Run llama.cpp's RPC server on `endpoint` for `devices`; returns only if it fails."""
    start = _START_SERVER(ggml.rpc_proc("ggml_backend_rpc_start_server"))
    array = (ctypes.c_void_p * len(devices))(*(d.handle for d in devices))
    start(endpoint.encode(), None, n_threads, len(devices), array)


class StepWatchdog:
    """Ends the worker when one llama_decode waits on the nodes longer than `timeout` seconds.

    A node whose process hangs while its box stays up (a stuck GPU driver, a stopped process)
    keeps acknowledging TCP, and llama.cpp's RPC client waits for its answer forever: the
    worker would hang with its streams. Exiting fails them (the front names the nodes), as a
    node that dies does. No single step comes near the timeout: prefill is chunked into
    n_batch-token steps.
    """

    def __init__(self, nodes: Sequence[str], timeout: float) -> None:
        self._nodes, self._timeout = ", ".join(nodes), timeout
        self._since: float | None = None
        threading.Thread(target=self._watch, daemon=True, name="rpc-watchdog").start()

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        self._since = time.monotonic()
        try:
            yield
        finally:
            self._since = None

    def _watch(self) -> None:
        while True:
            time.sleep(min(1.0, self._timeout / 4))
            since = self._since
            if since is not None and time.monotonic() - since > self._timeout:
                sys.stderr.write(f"error: no answer from the RPC nodes {self._nodes} for "
                                 f"{self._timeout:.0f} s (a node hangs); the worker exits\n")
                sys.stderr.flush()
                os._exit(70)


def libggml() -> Any:
    """The libggml the worker's llama.cpp uses (the registry lives there): the same file
    app/engine/backends.py registers the backend modules with."""
    from app.engine.backends import lib_dir
    from app.hardware.ggml_backends import library_path

    return ctypes.CDLL(str(library_path(lib_dir(), "ggml")), mode=ctypes.RTLD_GLOBAL)

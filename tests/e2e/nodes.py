"""Start `halo node` (llama.cpp's RPC server) as a real subprocess on a loopback port."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from app.hardware.nodes import NodeInfo, query_node
from tests.e2e.server import free_port, stop


@dataclass
class Node:
    address: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def halo_node(tmp: Path, *, mem: str | None = None, threads: int = 1,
              timeout: float = 60, port: int | None = None) -> Iterator[Node]:
    port = port or free_port()
    log_path = tmp / f"node-{port}.log"
    cmd = [sys.executable, "-m", "app", "node", "--host", "127.0.0.1", "--port", str(port),
           "--backend", "cpu", "--threads", str(threads)]
    if mem is not None:
        cmd += ["--mem", mem]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    node = Node(f"127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + timeout
        while not ask(node.address, 1.0).ok:
            if proc.poll() is not None:
                raise RuntimeError(f"halo node exited with {proc.returncode}:\n{node.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"halo node did not answer:\n{node.log()}")
            time.sleep(0.2)
        yield node
    finally:
        stop(proc)


def ask(address: str, timeout: float = 3.0) -> NodeInfo:
    return asyncio.run(query_node(address, timeout=timeout))

"""Measured memory of a worker: llama.cpp's buffer-size log lines and the process RSS."""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

# ggml_log_level
LOG_ERROR = 3
LOG_DEBUG = 4
LOG_CONT = 5

_MIB = 1024 * 1024
_BUFFER_RE = re.compile(r"\b(model|KV|RS|state|compute|output) buffer size =\s*([\d.]+) MiB")
# buffers on an RPC node are named "RPC<device>[<host:port>]" (ggml-rpc.cpp)
_RPC_BUFFER_RE = re.compile(r"\bRPC\d+\[([^\]]+)\]\s+(?:\w+\s+)?\w+ buffer size =")
_DEVICE_RE = re.compile(r"using device (\S+)")
_KIND = {
    "model": "model",
    "KV": "kv",
    "RS": "kv",
    "state": "kv",
    "compute": "compute",
    "output": "compute",
}


@dataclass
class BufferSizes:
    """Bytes of the buffers llama.cpp allocated on this box (summed over its devices), and on
    each RPC node (by address)."""

    model: int = 0
    kv: int = 0  # KV cache, recurrent state
    compute: int = 0  # compute (scheduler) buffers + logits output buffer
    nodes: dict[str, int] = field(default_factory=dict)


def parse_buffer_line(line: str, sizes: BufferSizes) -> None:
    """Add the size in one llama.cpp log line (if it reports a buffer) to `sizes`."""
    m = _BUFFER_RE.search(line)
    if m is None:
        return
    size = round(float(m.group(2)) * _MIB)
    node = _RPC_BUFFER_RE.search(line)
    if node is not None:
        sizes.nodes[node.group(1)] = sizes.nodes.get(node.group(1), 0) + size
        return
    kind = _KIND[m.group(1)]
    setattr(sizes, kind, getattr(sizes, kind) + size)


@dataclass
class LlamaLog:
    """Collects llama.cpp log output: line assembly, buffer sizes, devices, recent errors."""

    sink: TextIO | None = None
    sizes: BufferSizes = field(default_factory=BufferSizes)
    devices: list[str] = field(default_factory=list)
    errors: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    _partial: str = ""
    _level: int = 0

    def feed(self, level: int, text: str) -> None:
        """Handle one chunk from the llama.cpp log callback (may hold several lines)."""
        if level != LOG_CONT:
            self._level = level
        if self._level == LOG_DEBUG:
            return
        self._partial += text
        while "\n" in self._partial:
            line, self._partial = self._partial.split("\n", 1)
            self._line(line)

    def _line(self, line: str) -> None:
        if self.sink is not None:
            self.sink.write(line + "\n")
        if self._level == LOG_ERROR:
            self.errors.append(line.strip())
        parse_buffer_line(line, self.sizes)
        m = _DEVICE_RE.search(line)
        if m is not None and m.group(1) not in self.devices:
            self.devices.append(m.group(1))

    def backend_devices(self) -> tuple[str, ...]:
        """Offload devices seen in the log, then the CPU."""
        return (*self.devices, "CPU")


def parse_vmrss(status: str) -> int:
    """Bytes of VmRSS in a /proc/<pid>/status text (0 if absent)."""
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            parts = line.split()
            return int(parts[1]) * 1024
    return 0


def rss_bytes() -> int:
    """Resident set size of this process."""
    try:
        return parse_vmrss(Path("/proc/self/status").read_text())
    except OSError:
        return 0

"""Other boxes serving llama.cpp's RPC backend (`halo node` / `rpc-server`): reachability,
protocol version and device memory, read over the wire protocol itself (no llama_cpp here).

The protocol (vendor/llama.cpp/ggml/src/ggml-rpc/ggml-rpc.cpp, RPC_PROTO 7.0.0):
request  = | cmd: u8 | size: u64 | payload |, response = | size: u64 | payload |, little endian.
A server talks to one client at a time and the first command must be HELLO; a node that is
serving a worker accepts the TCP connection (listen backlog) but never answers: "busy".
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

RPC_PROTO_MAJOR = 7  # ggml-rpc.h RPC_PROTO_MAJOR_VERSION of the vendored llama.cpp
RPC_PROTO_MINOR = 0
CMD_GET_DEVICE_MEMORY = 11
CMD_HELLO = 14
CMD_DEVICE_COUNT = 15
CONN_CAPS_SIZE = 24  # transport.h RPC_CONN_CAPS_SIZE; all zero = plain TCP

NodeStatus = Literal["ok", "down", "busy", "version_mismatch", "error"]


class NodeAddressError(ValueError):
    """Not a `host:port` address."""


def parse_address(address: str) -> tuple[str, int]:
    """`box2:50052` -> ("box2", 50052); the same split llama.cpp's parse_endpoint makes."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise NodeAddressError(f"node address {address!r} is not host:port")
    return host, int(port)


@dataclass(frozen=True)
class NodeDevice:
    free_bytes: int
    total_bytes: int


@dataclass(frozen=True)
class NodeInfo:
    """What one node answered (or why it did not)."""

    address: str
    status: NodeStatus
    version: str | None = None
    devices: tuple[NodeDevice, ...] = field(default_factory=tuple)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def free_bytes(self) -> int:
        return sum(d.free_bytes for d in self.devices)

    @property
    def total_bytes(self) -> int:
        return sum(d.total_bytes for d in self.devices)

    def describe(self) -> str:
        if self.ok:
            return (f"{self.address}: ok, rpc {self.version}, {len(self.devices)} device(s), "
                    f"{self.free_bytes / 2**30:.2f} GiB free of {self.total_bytes / 2**30:.2f}")
        return f"{self.address}: {self.status}" + (f" ({self.error})" if self.error else "")

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["free_bytes"], out["total_bytes"] = self.free_bytes, self.total_bytes
        return out


class _Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, cmd: int, payload: bytes) -> bytes:
        self.writer.write(struct.pack("<BQ", cmd, len(payload)) + payload)
        await self.writer.drain()
        (size,) = struct.unpack("<Q", await self.reader.readexactly(8))
        if size > 1 << 20:
            raise ValueError(f"implausible response size {size}")
        return await self.reader.readexactly(size)


async def query_node(address: str, *, timeout: float = 3.0) -> NodeInfo:
    """HELLO, DEVICE_COUNT and GET_DEVICE_MEMORY of every device; never raises."""
    try:
        host, port = parse_address(address)
    except NodeAddressError as exc:
        return NodeInfo(address, "error", error=str(exc))
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError) as exc:
        return NodeInfo(address, "down", error=_os_reason(exc))
    conn = _Conn(reader, writer)
    try:
        try:
            hello = await asyncio.wait_for(conn.call(CMD_HELLO, bytes(CONN_CAPS_SIZE)), timeout)
        except TimeoutError:
            return NodeInfo(address, "busy", error="connected but no answer: serving another "
                            "client (llama.cpp's RPC server serves one at a time)")
        major, minor, patch = hello[0], hello[1], hello[2]
        version = f"{major}.{minor}.{patch}"
        if major != RPC_PROTO_MAJOR or minor > RPC_PROTO_MINOR:
            return NodeInfo(address, "version_mismatch", version, error=(
                f"node speaks RPC protocol {version}, this build {RPC_PROTO_MAJOR}."
                f"{RPC_PROTO_MINOR}.x: install the same llama.cpp on both"))
        async with asyncio.timeout(timeout):
            (count,) = struct.unpack("<I", await conn.call(CMD_DEVICE_COUNT, b""))
            devices = []
            for i in range(count):
                raw = await conn.call(CMD_GET_DEVICE_MEMORY, struct.pack("<I", i))
                free, total = struct.unpack("<QQ", raw)
                devices.append(NodeDevice(free, total))
        return NodeInfo(address, "ok", version, tuple(devices))
    except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, struct.error) as exc:
        return NodeInfo(address, "error", error=_os_reason(exc) or type(exc).__name__)
    finally:
        writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            await asyncio.wait_for(writer.wait_closed(), 1.0)


async def reachable(address: str, *, timeout: float = 1.0) -> bool:
    """True if something accepts TCP connections at `address` (cheap; no protocol)."""
    try:
        host, port = parse_address(address)
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except (OSError, TimeoutError, NodeAddressError):
        return False
    writer.close()
    return True


async def query_nodes(addresses: Sequence[str], *, timeout: float = 3.0) -> list[NodeInfo]:
    """query_node for every address, concurrently, in order."""
    return list(await asyncio.gather(*(query_node(a, timeout=timeout) for a in addresses)))


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return getattr(exc, "strerror", None) or str(exc)

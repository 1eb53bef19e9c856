"""Messages between the front and a worker, and their framing on a Unix socket.

A frame is a 4-byte big-endian length followed by a pickle of one message dataclass.
Both ends are this code base, started by the front, so pickle is trusted here.
The worker sends one `Step` frame per decode step carrying every event of that step.
"""

from __future__ import annotations

import asyncio
import logging
import pickle
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from app.engine.schema import (
    EmbedRequest,
    Event,
    GenerateRequest,
    LoadReport,
    WorkerSpec,
    WorkerStats,
)

logger = logging.getLogger(__name__)

_HEADER = struct.Struct(">I")
MAX_FRAME = 64 * 1024 * 1024


# front -> worker
@dataclass(frozen=True, slots=True)
class Load:
    spec: WorkerSpec


@dataclass(frozen=True, slots=True)
class Submit:
    request: GenerateRequest | EmbedRequest


@dataclass(frozen=True, slots=True)
class Cancel:
    request_id: str


@dataclass(frozen=True, slots=True)
class StatsQuery:
    query_id: int


@dataclass(frozen=True, slots=True)
class Stop:
    pass


# worker -> front
@dataclass(frozen=True, slots=True)
class Progress:
    value: float


@dataclass(frozen=True, slots=True)
class Loaded:
    report: LoadReport


@dataclass(frozen=True, slots=True)
class LoadFailed:
    reason: str


@dataclass(frozen=True, slots=True)
class Step:
    events: list[tuple[str, Event]]


@dataclass(frozen=True, slots=True)
class Guard:
    """The worker starts (`request_id`) or ends (None) work for one request alone that runs
    native code on its input (tokenizer, template, grammar parser): if the process dies
    in between, that request is the one that killed it."""

    request_id: str | None


@dataclass(frozen=True, slots=True)
class StatsReply:
    query_id: int
    stats: WorkerStats


ToWorker = Load | Submit | Cancel | StatsQuery | Stop
ToFront = Progress | Loaded | LoadFailed | Step | Guard | StatsReply


def encode(msg: ToWorker | ToFront) -> bytes:
    """One frame: length header + pickle."""
    body = pickle.dumps(msg, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(body)) + body


def _decode(body: bytes) -> ToWorker | ToFront:
    msg = pickle.loads(body)
    if not isinstance(
        msg,
        Load
        | Submit
        | Cancel
        | StatsQuery
        | Stop
        | Progress
        | Loaded
        | LoadFailed
        | Step
        | Guard
        | StatsReply,
    ):
        raise ValueError(f"unexpected IPC message {type(msg).__name__}")
    return msg


def _recv_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def recv_sync(sock: socket.socket) -> ToWorker | ToFront | None:
    """Blocking read of one frame; None at end of stream."""
    header = _recv_exact(sock, _HEADER.size)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_FRAME:
        raise ValueError(f"IPC frame too large: {size}")
    body = _recv_exact(sock, size)
    return None if body is None else _decode(body)


class FrameProtocol(asyncio.Protocol):
    """asyncio end of the channel: parses frames in `data_received`, no reader task.

    Each message goes to `on_message`; `on_close` runs once when the connection is lost
    (or a frame is malformed). Both callbacks may be replaced after construction.
    """

    def __init__(
        self,
        on_message: Callable[[ToWorker | ToFront], None],
        on_close: Callable[[], None],
    ) -> None:
        self.on_message = on_message
        self.on_close = on_close
        self.closed = False
        self._buf = bytearray()
        self._transport: asyncio.WriteTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check
        self._transport = cast(asyncio.WriteTransport, transport)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        start = 0
        try:
            while len(buf) - start >= _HEADER.size:
                (size,) = _HEADER.unpack_from(buf, start)
                if size > MAX_FRAME:
                    raise ValueError(f"IPC frame too large: {size}")
                end = start + _HEADER.size + size
                if len(buf) < end:
                    break
                msg = _decode(bytes(buf[start + _HEADER.size : end]))
                start = end
                self.on_message(msg)
        except ValueError:
            logger.exception("malformed IPC frame; closing the channel")
            del buf[:]
            self.close()
            return
        del buf[:start]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            self.on_close()

    def send(self, msg: ToWorker | ToFront) -> None:
        """Queue one frame for writing (dropped if the channel is closing)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(encode(msg))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

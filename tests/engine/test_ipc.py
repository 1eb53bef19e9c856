"""Framing of IPC messages, sync and asyncio ends (pure)."""

from __future__ import annotations

import asyncio
import pickle
import socket

import pytest

from app.engine import ipc
from app.engine.schema import Failed, GenerateRequest, TextDelta
from app.errors import EngineCode


def test_roundtrip_sync() -> None:
    a, b = socket.socketpair()
    with a, b:
        req = GenerateRequest("r1", prompt="hi", logit_bias={5: -1.0}, stop=["x"])
        a.sendall(ipc.encode(ipc.Submit(req)) + ipc.encode(ipc.Cancel("r1")))
        assert ipc.recv_sync(b) == ipc.Submit(req)
        assert ipc.recv_sync(b) == ipc.Cancel("r1")
        a.shutdown(socket.SHUT_WR)
        assert ipc.recv_sync(b) is None


@pytest.mark.anyio
async def test_frame_protocol_over_a_socketpair() -> None:
    a, b = socket.socketpair()
    got: list[object] = []
    closed = asyncio.Event()
    _, proto = await asyncio.get_running_loop().create_unix_connection(
        lambda: ipc.FrameProtocol(got.append, closed.set), sock=b
    )
    step = ipc.Step([("r1", TextDelta(0, "é", 1)),
                     ("r2", Failed(EngineCode.INTERNAL, "y", {"n": 1}))])
    with a:
        a.sendall(ipc.encode(step) + ipc.encode(ipc.Stop()))
        proto.send(ipc.Cancel("r9"))
        assert ipc.recv_sync(a) == ipc.Cancel("r9")
    await asyncio.wait_for(closed.wait(), 5)
    assert got == [step, ipc.Stop()]
    assert proto.closed


def test_frame_protocol_reassembles_split_frames() -> None:
    got: list[object] = []
    proto = ipc.FrameProtocol(got.append, lambda: None)
    data = ipc.encode(ipc.Progress(0.5)) + ipc.encode(ipc.Cancel("x"))
    for i in range(len(data)):
        proto.data_received(data[i : i + 1])
    assert got == [ipc.Progress(0.5), ipc.Cancel("x")]


def test_frame_protocol_drops_a_malformed_stream() -> None:
    got: list[object] = []
    proto = ipc.FrameProtocol(got.append, lambda: None)
    body = pickle.dumps("not a message")
    proto.data_received(len(body).to_bytes(4, "big") + body + ipc.encode(ipc.Stop()))
    assert got == []


def test_unknown_object_rejected() -> None:
    a, b = socket.socketpair()
    with a, b:
        body = pickle.dumps({"not": "a message"})
        a.sendall(len(body).to_bytes(4, "big") + body)
        with pytest.raises(ValueError, match="unexpected"):
            ipc.recv_sync(b)

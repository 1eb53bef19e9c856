"""A worker SIGKILLed mid-stream: its streams end cleanly, the server stays up, a reload."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

import httpx

from tests.e2e.server import Server
from tests.faults.conftest import SMOL, StreamResult, running


def _stream(server: Server, out: StreamResult, started: threading.Event) -> None:
    body = {"model": SMOL, "stream": True, "max_tokens": 2000, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Count to a million."}]}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                      timeout=60) as resp:
        for line in resp.iter_lines():
            out.feed(line, time.monotonic())
            if out.chunks >= 5:
                started.set()


def test_sigkill_mid_stream(server: Server, figures: Callable[[str], None]) -> None:
    httpx.post(server.url + "/models/load", json={"model": SMOL}, timeout=120).raise_for_status()
    info = running(server)
    assert info is not None
    pid = info["pid"]
    results = [StreamResult(), StreamResult()]
    started = [threading.Event(), threading.Event()]
    threads = [threading.Thread(target=_stream, args=(server, r, s))
               for r, s in zip(results, started, strict=True)]
    for t in threads:
        t.start()
    for s in started:
        assert s.wait(60), "the streams did not start"
    killed_at = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    for t in threads:
        t.join(10)
    ends = []
    for r in results:
        assert r.error is not None, r
        assert r.error["code"] == "worker_crashed"
        assert r.done
        ends.append(r.times[-1] - killed_at)
    assert max(ends) < 2.0, ends
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    t0 = time.monotonic()
    resp = httpx.post(server.base_url + "/chat/completions", timeout=120, json={
        "model": SMOL, "max_tokens": 4, "messages": [{"role": "user", "content": "Hi"}]})
    recovery = time.monotonic() - t0
    assert resp.status_code == 200, resp.text
    after = running(server)
    assert after is not None
    assert after["pid"] != pid
    figures(f"sigkill: 2 streams in flight, error+[DONE] after "
          f"{', '.join(f'{e * 1000:.0f} ms' for e in ends)}; next request reloaded the model "
          f"and answered in {recovery:.2f} s (new worker pid {after['pid']})")

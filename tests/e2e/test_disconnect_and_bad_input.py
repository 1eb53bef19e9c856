"""A client that goes away frees its slot; bad input never hurts the real server."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.e2e.server import Server

SMOL = "smollm2"


def running(server: Server, model: str) -> dict[str, Any]:
    data = httpx.get(server.url + "/models/running", timeout=5).json()["data"]
    found: dict[str, Any] = next(m for m in data if m["id"] == model)
    return found


def test_disconnect_frees_slot_and_spares_others(server: Server) -> None:
    httpx.post(server.url + "/models/load", json={"model": SMOL}, timeout=60).raise_for_status()
    other: dict[str, Any] = {}

    def long_stream() -> None:
        body = {"model": SMOL, "stream": True, "max_tokens": 200, "temperature": 0.8, "seed": 3,
                "messages": [{"role": "user", "content": "Write a long story about a fox."}]}
        finish = None
        with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                          timeout=120) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: {"):
                    choices = json.loads(line[6:])["choices"]
                    if choices and choices[0]["finish_reason"]:
                        finish = choices[0]["finish_reason"]
        other["finish"] = finish

    survivor = threading.Thread(target=long_stream)
    survivor.start()
    body = {"model": SMOL, "stream": True, "max_tokens": 1000, "ignore_eos": True,
            "messages": [{"role": "user", "content": "Count forever."}]}
    with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                      timeout=60) as resp:
        got = 0
        for line in resp.iter_lines():
            got += line.startswith("data: {")
            if got >= 5:
                break
    closed_at = time.monotonic()
    deadline = closed_at + 1.0
    busy = None
    while time.monotonic() < deadline:
        busy = running(server, SMOL)["slots_busy"]
        if busy <= 1:  # only the survivor's slot remains
            break
        time.sleep(0.05)
    assert busy is not None
    assert busy <= 1, f"slot still busy {time.monotonic() - closed_at:.2f}s after disconnect"
    survivor.join(120)
    assert other["finish"] in {"stop", "length"}


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"{oops", 400),
        (json.dumps({"model": SMOL, "messages": [{"role": "user", "content": "x"}],
                     "max_tokens": -3}).encode(), 400),
        (json.dumps({"model": SMOL, "messages": [{"role": "user", "content": "x"}],
                     "temperature": 5}).encode(), 400),
        (json.dumps({"model": SMOL, "messages": [{"role": "user", "content": "x"}],
                     "stop": ["a"] * 10_000}).encode(), 400),
        (json.dumps({"model": SMOL, "messages": [{"role": "villain", "content": "x"}]}).encode(),
         400),
        (json.dumps({"model": SMOL, "messages": [{"role": "user", "content": "x" * (20 << 20)}]})
         .encode(), 413),
        (json.dumps({"model": SMOL, "messages": [
            {"role": "user", "content": "word " * 5000}]}).encode(), 400),
    ],
)
def test_bad_input_is_4xx_and_server_lives(server: Server, raw: bytes, status: int) -> None:
    resp = httpx.post(server.base_url + "/chat/completions", content=raw,
                      headers={"content-type": "application/json"}, timeout=60)
    assert resp.status_code == status, resp.text
    assert set(resp.json()["error"]) == {"message", "type", "param", "code"}
    ok = httpx.post(server.base_url + "/chat/completions", timeout=60, json={
        "model": SMOL, "max_tokens": 2, "messages": [{"role": "user", "content": "hi"}]})
    assert ok.status_code == 200

"""Fault suite: a real server, real workers, the real test models (see tests/e2e/server.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import make_models_dir
from tests.e2e.server import Server, halo_server

SMOL = "smollm2"
# one decode thread per worker: on a loaded 2-core box OpenMP threads that spin-wait for
# each other make every step ~10x slower and the suite's timings meaningless
SERVER_ARGS = ("--n-threads", "1")
_FIGURES = pytest.StashKey[list[str]]()


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Record a line of measured figures; printed in the terminal summary."""
    lines = request.config.stash.setdefault(_FIGURES, [])
    return lines.append


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int,
                            config: pytest.Config) -> None:
    lines = config.stash.get(_FIGURES, [])
    if lines:
        terminalreporter.section("fault suite figures")
        for line in lines:
            terminalreporter.line(line)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("faults")
    # no hub on this machine: pulls (fuzzed too) fail at once instead of waiting on DNS
    with halo_server(make_models_dir(tmp / "models"), tmp, args=SERVER_ARGS,
                     env={"HF_HUB_OFFLINE": "1"}) as srv:
        yield srv


def running(server: Server, model: str = SMOL) -> dict[str, Any] | None:
    data = httpx.get(server.url + "/models/running", timeout=10).json()["data"]
    return next((m for m in data if m["id"] == model), None)


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


@dataclass
class StreamResult:
    """What one SSE stream delivered."""

    chunks: int = 0
    text: str = ""
    finish_reason: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    done: bool = False
    times: list[float] = field(default_factory=list)

    def feed(self, line: str, now: float) -> None:
        if not line.startswith("data: "):
            return
        data = line[6:]
        if data == "[DONE]":
            self.done = True
            self.times.append(now)
            return
        payload = json.loads(data)
        self.times.append(now)
        if "error" in payload:
            self.error = payload["error"]
            return
        self.chunks += 1
        if payload.get("usage"):
            self.usage = payload["usage"]
        for choice in payload.get("choices", []):
            self.text += choice.get("delta", {}).get("content") or choice.get("text") or ""
            self.finish_reason = choice.get("finish_reason") or self.finish_reason


def envelope_ok(resp: httpx.Response) -> bool:
    """An error body in the envelope of the route's protocol family."""
    try:
        body = resp.json()
    except ValueError:
        return False
    if not isinstance(body, dict):
        return False
    path = resp.request.url.path
    error = body.get("error")
    if path.startswith("/api/"):  # Ollama: {"error": "message"}
        return isinstance(error, str) and bool(error)
    if path.startswith("/v1/messages"):  # Anthropic
        return (body.get("type") == "error" and isinstance(error, dict)
                and isinstance(error.get("message"), str) and "type" in error)
    return isinstance(error, dict) and isinstance(error.get("message"), str) and "type" in error

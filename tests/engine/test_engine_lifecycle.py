"""Worker process lifecycle: load failures, stop, crash, front death, progress."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from app.engine.client import (
    Accepted,
    EngineClient,
    EngineLoadError,
    EngineUnavailableError,
    Failed,
    GenerateRequest,
    TextDelta,
)
from tests.engine.conftest import REPO, chat, run, smol_spec

pytestmark = pytest.mark.anyio


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


async def test_stop_leaves_no_process(smollm_path: Path) -> None:
    progress: list[float] = []
    client = await EngineClient.start(
        smol_spec(smollm_path, parallel=1), on_progress=progress.append
    )
    assert progress
    assert progress[-1] == 1.0
    pid = client.pid
    assert psutil.pid_exists(pid)
    await client.stop()
    assert not psutil.pid_exists(pid)
    assert not client.alive
    await client.stop()  # idempotent
    res = await run(client, chat("after", "hi"))
    assert res.failed is not None
    assert res.failed.code == "worker_stopped"
    with pytest.raises(EngineUnavailableError):
        await client.stats()


async def test_stop_ends_running_requests(smollm_path: Path) -> None:
    client = await EngineClient.start(smol_spec(smollm_path, parallel=1))
    try:
        gen = client.generate(chat("r", "Write an essay.", max_tokens=500, ignore_eos=True))
        assert isinstance(await anext(gen), Accepted)
        stopping = asyncio.create_task(client.stop())
        events = [e async for e in gen]
        await stopping
    finally:
        await client.stop()
    last = events[-1]
    assert isinstance(last, Failed)
    assert last.code == "worker_stopped"


async def test_killed_worker_fails_active_requests(smollm_path: Path) -> None:
    client = await EngineClient.start(smol_spec(smollm_path, parallel=2))
    try:
        gen = client.generate(chat("k", "Write an essay.", max_tokens=500, ignore_eos=True))
        async for event in gen:
            if isinstance(event, TextDelta):
                break
        os.kill(client.pid, signal.SIGKILL)
        rest = [e async for e in gen]
        last = rest[-1]
        assert isinstance(last, Failed)
        assert last.code == "worker_crashed"
        assert "-9" in last.message
        assert last.details["exit_code"] == -signal.SIGKILL
        assert not client.alive
        after = await run(client, chat("k2", "hi"))
        assert after.failed is not None
        assert after.failed.code == "worker_crashed"
    finally:
        await client.stop()
    assert not psutil.pid_exists(client.pid)


async def test_missing_file_is_a_load_error(tmp_path: Path) -> None:
    with pytest.raises(EngineLoadError) as err:
        await EngineClient.start(smol_spec(tmp_path / "nope.gguf"))
    assert "cannot be opened" in err.value.reason, err.value.reason
    assert str(tmp_path) not in err.value.reason  # the model id, never the server's path


async def test_garbage_file_is_a_load_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x00" * 64)
    with pytest.raises(EngineLoadError) as err:
        await EngineClient.start(smol_spec(bad))
    assert "llama.cpp" in err.value.reason, err.value.reason  # llama.cpp's own words, scrubbed
    assert str(tmp_path) not in err.value.reason


async def test_bad_cache_type_is_a_load_error(smollm_path: Path) -> None:
    with pytest.raises(EngineLoadError, match="cache type"):
        await EngineClient.start(smol_spec(smollm_path, cache_type_k="f17"))


async def test_worker_exits_when_the_front_dies(smollm_path: Path, tmp_path: Path) -> None:
    script = (
        "import asyncio, os, sys\n"
        "from pathlib import Path\n"
        "from app.engine.client import EngineClient, WorkerSpec\n"
        "async def main():\n"
        f"    c = await EngineClient.start(WorkerSpec('m', Path({str(smollm_path)!r}), 256, 1))\n"
        "    sys.stdout.write(f'{c.pid}\\n'); sys.stdout.flush()\n"
        "    os._exit(0)\n"
        "asyncio.run(main())\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp_path)},  # the orphaned worker's log goes here
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(out.stdout.strip())
    deadline = time.monotonic() + 15
    while not gone(pid):
        assert time.monotonic() < deadline, "worker outlived its front"
        await asyncio.sleep(0.1)


def test_client_under_uvloop(smollm_path: Path, tmp_path: Path) -> None:
    """uvicorn runs on uvloop when it is installed: spawn, stream, cancel and stop there."""
    script = (
        "import uvloop\n"
        "from pathlib import Path\n"
        "from app.engine.client import EngineClient, GenerateRequest, WorkerSpec, Finished\n"
        "async def main():\n"
        f"    c = await EngineClient.start(WorkerSpec('m', Path({str(smollm_path)!r}), 256, 2))\n"
        "    gen = c.generate(GenerateRequest('a', prompt='Hi', max_tokens=50))\n"
        "    await anext(gen)\n"
        "    await gen.aclose()\n"
        "    req = GenerateRequest('b', prompt='Hi', max_tokens=3)\n"
        "    events = [e async for e in c.generate(req)]\n"
        "    assert isinstance(events[-1], Finished), events\n"
        "    assert (await c.stats()).slots_busy == 0\n"
        "    await c.stop()\n"
        "uvloop.run(main())\n"
    )
    subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        cwd=REPO,
        env={**os.environ, "TMPDIR": str(tmp_path)},
        check=True,
        timeout=60,
    )


def test_front_never_imports_llama_cpp() -> None:
    code = (
        "import sys, app.engine.client, app.engine.ipc, app.engine\n"
        "bad = [m for m in sys.modules if m.startswith('llama_cpp')]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)


async def test_generate_rejects_duplicate_request_ids(smollm_path: Path) -> None:
    client = await EngineClient.start(smol_spec(smollm_path, parallel=1))
    try:
        first = client.generate(GenerateRequest("dup", prompt="a", max_tokens=50))
        await anext(first)
        with pytest.raises(ValueError, match="already running"):
            await anext(client.generate(GenerateRequest("dup", prompt="b")))
        await first.aclose()
    finally:
        await client.stop()

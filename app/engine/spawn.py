"""Starting a worker process: socketpair, environment, log file; reading the log's tail."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.engine.schema import WorkerSpec

_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the directory holding `app/`
_ERROR_RE = re.compile(r"error|fail|abort|out of memory|exception", re.IGNORECASE)


@dataclass
class Spawned:
    """A started worker: its process, the front's end of the socket, its log file."""

    proc: asyncio.subprocess.Process
    sock: socket.socket
    log_path: Path


def worker_env(spec: WorkerSpec) -> dict[str, str]:
    """The front's environment plus the spec's, the library path and `app` importable."""
    return package_env(dict(os.environ), lib_path=spec.lib_path, extra=spec.env)


def package_env(
    env: dict[str, str], *, lib_path: str | None, extra: Mapping[str, str]
) -> dict[str, str]:
    """`env` plus `extra`, LLAMA_CPP_LIB_PATH and `app` importable (workers, `halo node`)."""
    env.update(extra)
    if lib_path:
        env["LLAMA_CPP_LIB_PATH"] = lib_path
    path = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(_PACKAGE_ROOT) + (os.pathsep + path if path else "")
    return env


async def spawn_worker(spec: WorkerSpec) -> Spawned:
    """`python -m app.engine.worker --fd N` with stdout/stderr into a temp log file."""
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    safe_id = re.sub(r"[^A-Za-z0-9._-]+", "_", spec.model_id)[:64]
    log_fd, log_name = tempfile.mkstemp(prefix=f"halo-worker-{safe_id}-", suffix=".log")
    log_path = Path(log_name)
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-P",  # no cwd on sys.path: `app` comes from PYTHONPATH / the install
            "-m",
            "app.engine.worker",
            "--fd",
            str(child.fileno()),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            pass_fds=(child.fileno(),),
            env=worker_env(spec),
        )
    except BaseException:
        parent.close()
        log_path.unlink(missing_ok=True)
        raise
    finally:
        child.close()
        os.close(log_fd)
    return Spawned(proc, parent, log_path)


def log_tail(path: Path, max_lines: int = 5, *, errors_only: bool = False) -> str:
    """The last error-looking lines of a worker log (for load failures and crashes)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if _ERROR_RE.search(ln)]
    if errors_only or errors:
        lines = errors
    return "; ".join(lines[-max_lines:])

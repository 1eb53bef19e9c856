"""External commands of the probe (``uname -r``, ``rocminfo``, ``vulkaninfo --summary``).

Run for real with a timeout, or read from a fixture's ``commands/`` directory, whose files are
``uname-r.txt``, ``rocminfo.txt``, ``vulkaninfo-summary.txt``, ``llama-devices.json``,
``env.json`` (the environment of the capture) and ``device-access.json`` (``{"/dev/kfd": false}``
when the capture's user could not open a device).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

#: After a timeout the child is killed; a child stuck in the kernel (a GPU hang) may not die, and
#: is then abandoned after this many more seconds rather than waited for.
KILL_GRACE = 1.0

TOOLS: dict[str, tuple[str, ...]] = {
    "rocminfo": ("rocminfo",),
    "vulkaninfo-summary": ("vulkaninfo", "--summary"),
}


@dataclass(frozen=True)
class Finished:
    returncode: int
    stdout: str
    stderr: str


def run_bounded(
    argv: Sequence[str], *, env: Mapping[str, str], timeout: float, cwd: Path | None = None
) -> Finished:
    """Run ``argv`` and return its output; ``TimeoutExpired`` after ``timeout`` seconds.

    Unlike ``subprocess.run``, never blocks for good on a child that ignores SIGKILL (stuck in
    the GPU driver): it waits ``KILL_GRACE`` seconds after the kill, then gives up on it.
    """
    with subprocess.Popen(
        list(argv),
        env=dict(env),
        cwd=cwd,
        text=True,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.communicate(timeout=KILL_GRACE)
            except subprocess.TimeoutExpired:
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
                proc.returncode = -9  # abandoned: keeps Popen.__exit__ from waiting for it
            raise
        return Finished(proc.returncode, stdout, stderr)


def run_tool(name: str, *, env: Mapping[str, str], timeout: float) -> tuple[str | None, str | None]:
    """``(stdout, error)``; ``(None, None)`` when the tool is not on PATH.

    A tool that fails with no output (``vulkaninfo`` without any driver) gives ``("", error)``.
    """
    argv = TOOLS[name]
    exe = shutil.which(argv[0], path=env.get("PATH"))
    if exe is None:
        return None, None
    shown = " ".join(argv)
    try:
        done = run_bounded([exe, *argv[1:]], env=env, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"{shown} did not finish within {timeout:g} s"
    except OSError as exc:
        return None, f"cannot run {shown}: {exc}"
    if done.returncode != 0 and not done.stdout.strip():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return "", f"{shown} exited with {done.returncode}: {last}"
    return done.stdout, None


def fixture_text(root: Path, name: str) -> str | None:
    try:
        return (root / "commands" / name).read_text(encoding="utf-8")
    except OSError:
        return None


def _json_object(root: Path, name: str) -> dict[str, object]:
    text = fixture_text(root, name)
    data = json.loads(text) if text else {}
    if not isinstance(data, dict):
        raise ValueError(f"{root / 'commands' / name}: expected a JSON object")
    return data


def fixture_env(root: Path) -> dict[str, str]:
    """The captured environment of a fixture machine (``commands/env.json``)."""
    return {str(k): str(v) for k, v in _json_object(root, "env.json").items()}


def fixture_access(root: Path) -> dict[str, bool]:
    """Device-file access recorded with a capture (``commands/device-access.json``)."""
    return {str(k): bool(v) for k, v in _json_object(root, "device-access.json").items()}

"""`halo pull | fit | ls | rm` as subprocesses against a loopback hub (real huggingface_hub)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from app.hub.download import part_path
from tests.hub.conftest import hub_env
from tests.hub.tiny import tiny_gguf
from tests.hub_fake import FakeHub
from tests.model_headers import write_model

REPO = Path(__file__).resolve().parents[2]
NO_SERVER = "http://127.0.0.1:9"  # nothing listens there: the commands work on the dir alone


def halo(hub: FakeHub, tmp: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, **hub_env(tmp / "hf-home", hub.url)}
    return subprocess.Popen([sys.executable, "-m", "app", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run(hub: FakeHub, tmp: Path, *args: str) -> tuple[int, str, str]:
    proc = halo(hub, tmp, *args)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err


def lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_pull_ls_rm(hub: FakeHub, src: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    file = tiny_gguf(src / "Tiny-Q4_K_M.gguf", rows=4000)
    hub.add("org/Tiny-GGUF", file)
    common = ("--models-dir", str(models), "--server", NO_SERVER, "--memory-budget", "16GiB")
    rc, out, err = run(hub, tmp_path, "pull", "org/Tiny-GGUF", *common)
    assert rc == 0, err
    assert "org/Tiny-GGUF:Q4_K_M: needs" in err
    assert ": fits" in err
    events = lines(out)  # not a TTY: JSON lines
    assert events[-1]["status"] == "success"
    assert events[-1]["model"] == "Tiny-Q4_K_M"
    downloading = [e for e in events if e["status"] == "downloading"]
    assert downloading[-1]["completed"] == file.stat().st_size
    assert {"bytes_per_second", "eta_seconds"} <= set(downloading[-1])

    rc, out, err = run(hub, tmp_path, "pull", "org/Tiny-GGUF:Q4_K_M", *common)
    assert rc == 0, err
    assert [e["status"] for e in lines(out)] == ["success"]
    assert lines(out)[-1]["already_present"] is True
    # one download; the other requests were the fit check's header ranges (first pull only)
    assert [r for r in hub.ranges_of("Tiny-Q4_K_M.gguf") if r is None] == [None]
    assert [r for r in hub.ranges_of("Tiny-Q4_K_M.gguf") if r] == ["bytes=0-1048575"]

    rc, out, err = run(hub, tmp_path, "ls", "--json", *common[:4])
    assert rc == 0, err
    (row,) = json.loads(out)["models"]
    assert (row["id"], row["quant"], row["source"]) == (
        "Tiny-Q4_K_M", "Q4_K_M", "org/Tiny-GGUF:Q4_K_M")

    rc, out, err = run(hub, tmp_path, "rm", "Tiny-Q4_K_M", *common[:4])
    assert rc == 0, err
    assert "removed Tiny-Q4_K_M: Tiny-Q4_K_M.gguf" in out
    assert not (models / "Tiny-Q4_K_M.gguf").exists()


def _wait_for_part(part: Path, at_least: int, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        size = part.stat().st_size if part.exists() else 0
        if size >= at_least:
            return size
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{part} did not reach {at_least} bytes")


def test_ctrl_c_and_kill_leave_a_partial_file_that_the_next_pull_resumes(
        hub: FakeHub, src: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    file = tiny_gguf(src / "Big-Q4_K_M.gguf", rows=2**17)  # 64 MiB (10 MiB chunks are written)
    size = file.stat().st_size
    hub.add("org/Big", file)
    hub.rate = 8e6
    args = ("pull", "org/Big", "--models-dir", str(models), "--server", NO_SERVER,
            "--memory-budget", "16GiB")
    part = part_path(models, "Big-Q4_K_M.gguf")

    proc = halo(hub, tmp_path, *args)
    _wait_for_part(part, 1, proc)
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "partial download is kept" in err
    kept = part.stat().st_size
    assert 0 < kept < size

    proc = halo(hub, tmp_path, *args)
    _wait_for_part(part, kept + 1, proc)
    proc.kill()  # no chance to clean up
    proc.communicate(timeout=30)
    kept = part.stat().st_size
    assert 0 < kept < size
    assert not (models / "Big-Q4_K_M.gguf").exists()

    hub.rate = None
    hub.wait_idle()
    before = hub.bytes_served("org/Big", "Big-Q4_K_M.gguf")
    rc, out, err = run(hub, tmp_path, *args)
    assert rc == 0, err
    transferred = hub.bytes_served("org/Big", "Big-Q4_K_M.gguf") - before
    # the fit check read the first MiB (header); the download only what was missing
    assert hub.ranges_of("Big-Q4_K_M.gguf")[-2:] == ["bytes=0-1048575", f"bytes={kept}-"]
    assert transferred - (1 << 20) == size - kept
    assert (models / "Big-Q4_K_M.gguf").read_bytes() == file.read_bytes()


def test_fit_of_an_80b_header_reads_a_few_mb(hub: FakeHub, src: Path, tmp_path: Path) -> None:
    path = write_model(src, "qwen3-next-80b-a3b")
    hub.add("Qwen/Qwen3-Next-80B-A3B-Instruct-GGUF", path, sha256="0" * 64)
    started = time.monotonic()
    rc, out, err = run(hub, tmp_path, "fit", "Qwen/Qwen3-Next-80B-A3B-Instruct-GGUF:Q4_K_M",
                       "--json", "--models-dir", str(tmp_path / "models"), "--server", NO_SERVER,
                       "--memory-budget", "96GiB")
    seconds = time.monotonic() - started
    assert rc == 0, err
    report = json.loads(out)
    assert report["verdict"] == "fits"
    assert report["download_bytes"] == path.stat().st_size > 40 * 10**9
    served = hub.bytes_served("Qwen/Qwen3-Next-80B-A3B-Instruct-GGUF", path.name)
    assert served == report["header_bytes_read"] < 16 * 2**20
    assert seconds < 30  # a Python start-up, the probe and a few range requests

    rc, out, err = run(hub, tmp_path, "fit", "Qwen/Qwen3-Next-80B-A3B-Instruct-GGUF",
                       "--models-dir", str(tmp_path / "models"), "--server", NO_SERVER,
                       "--memory-budget", "32GiB")
    assert rc == 2
    assert "never fits" in out


def test_pull_all_brings_the_declared_set(hub: FakeHub, src: Path, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    hub.add("org/A", tiny_gguf(src / "A-Q8_0.gguf"))
    hub.add("org/B", tiny_gguf(src / "B-Q4_K_M.gguf"))
    (models / "models.toml").write_text(
        '[models.a]\npath = "A-Q8_0.gguf"\nsource = "org/A:Q8_0"\n'
        '[models.b]\npath = "B-Q4_K_M.gguf"\nsource = "org/B"\n')
    rc, out, err = run(hub, tmp_path, "pull", "--all", "--models-dir", str(models),
                       "--server", NO_SERVER, "--memory-budget", "16GiB")
    assert rc == 0, err
    assert [e["model"] for e in lines(out) if e["status"] == "success"] == [
        "A-Q8_0", "B-Q4_K_M"]
    rc, out, err = run(hub, tmp_path, "ls", "--json", "--models-dir", str(models),
                       "--server", NO_SERVER)
    assert [m["id"] for m in json.loads(out)["models"]] == ["a", "b"]

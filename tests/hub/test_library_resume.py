"""Why app/hub keeps its own partial file: the pinned huggingface_hub's `hf_hub_download`
restarts an interrupted download from zero in the next process (it downloads into a
process-unique `*.incomplete` file). If this test fails after a version bump, the library
resumes again and app/hub/download.py could use it directly."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.hub.conftest import hub_env
from tests.hub.tiny import tiny_gguf
from tests.hub_fake import FakeHub

SCRIPT = """
import sys
from huggingface_hub import hf_hub_download
hf_hub_download(sys.argv[1], sys.argv[2], local_dir=sys.argv[3])
"""


def test_hf_hub_download_restarts_instead_of_resuming(
        hub: FakeHub, src: Path, tmp_path: Path) -> None:
    file = tiny_gguf(src / "Big-Q4_K_M.gguf", rows=2**17)  # 64 MiB
    hub.add("org/Big", file)
    hub.rate = 16e6
    env = {**os.environ, **hub_env(tmp_path / "hf-home", hub.url)}
    args = [sys.executable, "-c", SCRIPT, "org/Big", "Big-Q4_K_M.gguf", str(tmp_path / "out")]
    proc = subprocess.Popen(args, env=env)
    deadline = time.monotonic() + 60
    while hub.bytes_served("org/Big", "Big-Q4_K_M.gguf") < 24 << 20:
        assert proc.poll() is None
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    hub.wait_idle()
    hub.rate = None
    subprocess.run(args, env=env, check=True, timeout=120)
    assert (tmp_path / "out" / "Big-Q4_K_M.gguf").read_bytes() == file.read_bytes()
    downloads = hub.ranges_of("Big-Q4_K_M.gguf")
    assert downloads == [None, None]  # the second process asked for the whole file again

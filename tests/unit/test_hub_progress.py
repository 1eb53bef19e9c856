"""Pull progress: a bar with bytes, speed and ETA on a TTY; throttled JSON lines otherwise."""

from __future__ import annotations

import io
import json

from app.hub.download import PullEvent
from app.hub.progress import ProgressPrinter

GB = 10**9


def run(tty: bool) -> str:
    now = [0.0]
    out = io.StringIO()
    printer = ProgressPrinter(out, tty=tty, every=1.0, clock=lambda: now[0])
    for tenth in range(11):  # 100 MB/s for 10 s, an event every 0.5 s
        now[0] = tenth / 2
        printer(PullEvent("downloading", "m-Q4_K_M.gguf", tenth * GB // 20, GB // 2))
    printer(PullEvent("success", model="m-Q4_K_M"))
    return out.getvalue()


def test_tty_bar_has_bytes_speed_and_eta() -> None:
    text = run(tty=True)
    assert "\r" in text
    assert "50.0%" in text
    assert "238.4 MiB/476.8 MiB 95.4 MiB/s ETA 00:02" in text
    assert text.endswith("pulled m-Q4_K_M\n")


def test_logs_get_json_lines_at_most_once_a_second() -> None:
    lines = [json.loads(line) for line in run(tty=False).splitlines()]
    progress = [e for e in lines if e["status"] == "downloading"]
    assert [e["completed"] for e in progress] == [0, 100_000_000, 200_000_000, 300_000_000,
                                                  400_000_000, 500_000_000]
    assert progress[-1]["bytes_per_second"] == 100_000_000
    assert progress[2]["eta_seconds"] == 3.0
    assert lines[-1] == {"status": "success", "model": "m-Q4_K_M"}

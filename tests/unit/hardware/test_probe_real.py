"""The one test that reads the real machine: it has no GPU, so the probe must say CPU, fast."""

from __future__ import annotations

import json
import os
import time

from app.hardware.probe import probe
from app.hardware.report import format_report


def test_real_probe_on_this_machine() -> None:
    started = time.monotonic()
    report = probe(env=os.environ)
    wall = time.monotonic() - started
    # not a speed test: the probe runs the device listing and the AMX check in child processes
    # with their own time-outs; this only catches a probe that hangs
    assert wall < 30.0
    assert report.choice.backend == "cpu"
    assert report.choice.ok
    assert "no GPU found (no /dev/dri render node)" in report.choice.reasons
    assert report.pool.budget_bytes > 0
    assert json.loads(json.dumps(report.to_dict()))["choice"]["backend"] == "cpu"
    assert "choice         cpu" in format_report(report)

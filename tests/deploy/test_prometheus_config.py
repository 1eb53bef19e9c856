"""deploy/prometheus.yml is a valid Prometheus configuration (checked by promtool)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.deploy.dashboard import DEPLOY


def test_promtool_check_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is missing: run `apt-get install prometheus`")
    result = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

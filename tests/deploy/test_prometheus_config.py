"""deploy/prometheus.yml is a valid Prometheus configuration (checked by promtool)."""

from __future__ import annotations

import subprocess

from tests.deploy.dashboard import DEPLOY
from tests.system_tools import require_tool


def test_promtool_check_config() -> None:
    promtool = require_tool("promtool")
    result = subprocess.run([promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout

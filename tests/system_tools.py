"""System programs some tests need (installed by `.ci/run`, not by the Makefile: they need root).

Outside CI a missing program skips its tests with one line naming the package; with `CI=true`
it fails them, so CI can never pass by skipping.
"""

from __future__ import annotations

import os
import shutil

import pytest

# program -> Debian package that provides it
PACKAGES = {
    "prometheus": "prometheus",
    "promtool": "prometheus",
    "systemd-analyze": "systemd",
    "chromium": "chromium",
    "objdump": "binutils",
}


def require_tool(program: str) -> str:
    """The program's path; else skip (fail when CI=true) naming the install command."""
    path = shutil.which(program)
    if path is not None:
        return path
    package = PACKAGES.get(program, program)
    message = f"{program} is not installed: run `apt-get install -y {package}` (as .ci/run does)"
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)

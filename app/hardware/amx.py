"""Does this machine really execute ggml's AMX kernels? Checked, not believed.

CPUID (``/proc/cpuinfo`` flags) and XCR0 can advertise AMX while the machine cannot run ggml's
AMX code: on an Intel Xeon VM of this project a bare ``ldtilecfg``/``tileloadd`` runs, yet ggml's
tile kernel dies with SIGILL at its ``tileloadd`` on the first prompt. So the flags only say
whether to *try*; the proof is a child process (``python -m app.hardware.amx_ggml``) that loads
the installed AMX variant and runs ggml's AMX matrix multiply once. A SIGILL kills only that
child. The verdict is one of :data:`Verdict`; only ``executes`` lets halo use an AMX variant.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.hardware.cpu_variants import AMX_VARIANTS

Verdict = Literal["executes", "not_advertised", "not_installed", "sigill", "refused", "error"]


@dataclass(frozen=True)
class AmxCheck:
    verdict: Verdict
    detail: str

    @property
    def usable(self) -> bool:
        return self.verdict == "executes"


def advertised(cpuinfo: str) -> bool:
    """Whether the first CPU's flags list ``amx_tile`` (pure)."""
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            return "amx_tile" in line.split(":", 1)[-1].split()
    return False


def verdict_of(returncode: int, stdout: str) -> AmxCheck:
    """Turn the child's exit into a verdict (pure)."""
    out = stdout.strip().splitlines()[-1] if stdout.strip() else ""
    if returncode == 0 and out == "executes":
        return AmxCheck("executes", "ggml's AMX kernel ran in a test process")
    if returncode == 4:
        return AmxCheck("refused", f"ggml did not run its AMX kernel: {out}")
    if returncode == -signal.SIGILL:
        return AmxCheck("sigill", "CPUID advertises AMX but ggml's AMX kernel raised SIGILL "
                                  "(the hypervisor or kernel does not fully enable it)")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return AmxCheck("error", f"the AMX test process died with {name}")
    return AmxCheck("error", f"the AMX test process exited with {returncode}: {out[:200]}")


def amx_module(module_dir: Path) -> Path | None:
    """The installed CPU variant built with AMX, if any."""
    for name in sorted(AMX_VARIANTS):
        path = module_dir / f"libggml-cpu-{name}.so"
        if path.exists():
            return path
    return None


def check_amx(lib_dir: Path, module_dir: Path, *, cpuinfo_path: Path = Path("/proc/cpuinfo"),
              timeout: float = 30.0, python: str = sys.executable) -> AmxCheck:
    """Run ggml's AMX kernel in a child process when the CPU advertises AMX."""
    try:
        cpuinfo = cpuinfo_path.read_text(errors="replace")
    except OSError as exc:
        return AmxCheck("error", f"cannot read {cpuinfo_path}: {exc}")
    if not advertised(cpuinfo):
        return AmxCheck("not_advertised", "the CPU does not advertise AMX")
    module = amx_module(module_dir)
    if module is None:
        return AmxCheck("not_installed", "no AMX variant is installed")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run(
            [python, "-P", "-m", "app.hardware.amx_ggml", str(lib_dir), str(module)],
            capture_output=True, text=True, timeout=timeout, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return AmxCheck("error", f"cannot run the AMX test process: {exc}")
    return verdict_of(done.returncode, done.stdout)

"""Does this machine really execute AMX tile instructions? Checked, not believed.

CPUID (``/proc/cpuinfo`` flags) and XCR0 can advertise AMX while the hypervisor does not enable
it: ggml's AMX kernels then die with SIGILL at ``tileloadd`` on the first large batch (seen on an
Intel Xeon VM of this project). So the flags only say whether to *try*; the proof is a child
process (``python -m app.hardware.amx``) that asks the kernel for the tile state
(``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)``, as ggml does) and executes
``ldtilecfg``/``tileloadd``/``tilerelease`` from a page of machine code. A SIGILL kills only
that child. The verdict is one of :data:`Verdict`.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

Verdict = Literal["executes", "not_advertised", "sigill", "refused", "error"]

# ldtilecfg (%rdi); tileloadd (%rsi,%rdx,1) into tmm0 and tmm1; tilezero tmm2;
# tdpbssd tmm1,tmm0,tmm2 (AMX-INT8); tdpbf16ps tmm1,tmm0,tmm3 (AMX-BF16);
# tilestored tmm2 to (%rsi,%rdx,1); tilerelease; xor %eax,%eax; ret  (GNU as 2.40)
_CODE = bytes.fromhex(
    "c4e2784907" "c4e27b4b0416" "c4e27b4b0c16" "c4e27b49d0" "c4e2735ed0" "c4e2725cd8"
    "c4e27a4b1416" "c4e27849c0" "31c0" "c3"
)
_ARCH_REQ_XCOMP_PERM = 0x1023
_XFEATURE_XTILEDATA = 18
_SYS_ARCH_PRCTL = 158  # x86-64


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
    out = stdout.strip()
    if returncode == 0 and out == "executes":
        return AmxCheck("executes", "AMX tile instructions executed in a test process")
    if returncode == 3:
        return AmxCheck("refused", f"the kernel refused the AMX tile state: {out}")
    if returncode == -signal.SIGILL:
        return AmxCheck("sigill", "CPUID advertises AMX but tileloadd raised SIGILL "
                                  "(the hypervisor or kernel does not enable it)")
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return AmxCheck("error", f"the AMX test process died with {name}")
    return AmxCheck("error", f"the AMX test process exited with {returncode}: {out[:200]}")


def check_amx(cpuinfo_path: Path = Path("/proc/cpuinfo"), *, timeout: float = 10.0,
              python: str = sys.executable) -> AmxCheck:
    """Run the proof in a child process when the CPU advertises AMX."""
    try:
        cpuinfo = cpuinfo_path.read_text(errors="replace")
    except OSError as exc:
        return AmxCheck("error", f"cannot read {cpuinfo_path}: {exc}")
    if not advertised(cpuinfo):
        return AmxCheck("not_advertised", "the CPU does not advertise AMX")
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run([python, "-P", "-m", "app.hardware.amx"], capture_output=True,
                              text=True, timeout=timeout, check=False, env=env)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return AmxCheck("error", f"cannot run the AMX test process: {exc}")
    return verdict_of(done.returncode, done.stdout)


def _execute_tiles() -> int:
    """Child side: request the tile state, then run the tile code. SIGILL if not enabled."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    rc = libc.syscall(ctypes.c_long(_SYS_ARCH_PRCTL), ctypes.c_long(_ARCH_REQ_XCOMP_PERM),
                      ctypes.c_long(_XFEATURE_XTILEDATA))
    if rc != 0:
        sys.stdout.write(f"arch_prctl errno {ctypes.get_errno()}\n")
        return 3
    page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    page.write(_CODE)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    func = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long)(address)
    config = (ctypes.c_uint8 * 64)()
    config[0] = 1  # palette 1
    for tile in range(4):  # tmm0..tmm3: 16 rows of 64 bytes
        config[16 + 2 * tile] = 64  # colsb, uint16 little endian
        config[48 + tile] = 16  # rows
    data = (ctypes.c_uint8 * (16 * 64))(*range(256), *range(256), *range(256), *range(256))

    def run() -> None:
        func(ctypes.addressof(config), ctypes.addressof(data), 64)

    run()  # the main thread, then another thread, as ggml's compute threads would
    worker = threading.Thread(target=run)
    worker.start()
    worker.join()
    sys.stdout.write("executes\n")
    return 0


if __name__ == "__main__":
    sys.exit(_execute_tiles())

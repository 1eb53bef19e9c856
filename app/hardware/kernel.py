"""Kernel release (``uname -r``) parsing and the gfx1151 compute gate.

AMD's supported minimum for gfx1151 compute (ROCm "RDNA3.5 system optimization" page): Linux
6.18.4 on generic distributions, ``6.17.0-19.19~24.04.2`` for the Ubuntu 24.04 HWE kernel
(``uname -r`` shows ``6.17.0-19-generic``) and ``6.14.0-1018`` for the Ubuntu OEM kernel. Before
6.16.9 ROCm sees only about 15.5 GB of memory (ROCm issue #5444).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_RELEASE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:-(\d+))?(.*)$")

GENERIC_MINIMUM = (6, 18, 4)
FULL_MEMORY_MINIMUM = (6, 16, 9)
UBUNTU_HWE = ((6, 17, 0), 19)
UBUNTU_OEM = ((6, 14, 0), 1018)


@dataclass(frozen=True)
class KernelVersion:
    release: str
    version: tuple[int, int, int]
    #: Distribution ABI number after the first dash (Ubuntu ``6.17.0-19-generic`` -> 19).
    abi: int | None
    #: The rest, e.g. ``-generic``, ``-oem``, ``.fc43.x86_64``.
    flavour: str


@dataclass(frozen=True)
class KernelGate:
    ok: bool
    reason: str


def parse_kernel_release(release: str) -> KernelVersion | None:
    """``"6.17.0-19-generic"`` -> ``KernelVersion((6, 17, 0), abi=19, flavour="-generic")``."""
    match = _RELEASE.match(release.strip())
    if match is None:
        return None
    major, minor, patch, abi, flavour = match.groups()
    return KernelVersion(
        release=release.strip(),
        version=(int(major), int(minor), int(patch or 0)),
        abi=int(abi) if abi is not None else None,
        flavour=flavour,
    )


def _fmt(version: tuple[int, int, int]) -> str:
    return ".".join(str(part) for part in version)


def gfx1151_compute_gate(release: str | None) -> KernelGate:
    """Whether this kernel is new enough for ROCm on gfx1151, and why."""
    if not release:
        return KernelGate(False, "kernel version unknown")
    kernel = parse_kernel_release(release)
    if kernel is None:
        return KernelGate(False, f"cannot parse kernel version {release!r}")
    if kernel.version >= GENERIC_MINIMUM:
        return KernelGate(True, f"kernel {kernel.release} >= {_fmt(GENERIC_MINIMUM)}")
    for (base, min_abi), label, marker in (
        (UBUNTU_HWE, "Ubuntu 24.04 HWE", "generic"),
        (UBUNTU_OEM, "Ubuntu 24.04 OEM", "oem"),
    ):
        if (
            kernel.version == base
            and kernel.abi is not None
            and kernel.abi >= min_abi
            and marker in kernel.flavour
        ):
            return KernelGate(
                True, f"kernel {kernel.release}: the {label} build {_fmt(base)}-{min_abi} or newer"
            )
    reason = (
        f"kernel {kernel.release} is older than AMD's minimum for gfx1151 compute "
        f"({_fmt(GENERIC_MINIMUM)}, or Ubuntu 24.04 HWE 6.17.0-19 / OEM 6.14.0-1018)"
    )
    if kernel.version < FULL_MEMORY_MINIMUM:
        reason += f"; before {_fmt(FULL_MEMORY_MINIMUM)} ROCm can see only about 15.5 GB"
    return KernelGate(False, reason)

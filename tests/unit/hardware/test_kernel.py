from __future__ import annotations

import pytest

from app.hardware.kernel import KernelVersion, gfx1151_compute_gate, parse_kernel_release


@pytest.mark.parametrize(
    ("release", "expected"),
    [
        ("6.17.0-35-generic", KernelVersion("6.17.0-35-generic", (6, 17, 0), 35, "-generic")),
        ("6.14.0-1014-oem", KernelVersion("6.14.0-1014-oem", (6, 14, 0), 1014, "-oem")),
        (
            "6.19.8-200.fc43.x86_64",
            KernelVersion("6.19.8-200.fc43.x86_64", (6, 19, 8), 200, ".fc43.x86_64"),
        ),
        ("6.18.44-fc-v669", KernelVersion("6.18.44-fc-v669", (6, 18, 44), None, "-fc-v669")),
        ("7.1.0", KernelVersion("7.1.0", (7, 1, 0), None, "")),
    ],
)
def test_parse_release(release: str, expected: KernelVersion) -> None:
    assert parse_kernel_release(release) == expected


def test_parse_release_rejects_garbage() -> None:
    assert parse_kernel_release("linux") is None


@pytest.mark.parametrize(
    "release",
    [
        "6.18.4",
        "6.19.8-200.fc43.x86_64",  # Fedora 43 (ROCm #5444 comment)
        "7.1.0",  # NixOS (nix-amd-ai #42)
        "6.17.0-35-generic",  # Ubuntu 24.04 HWE, newer than 6.17.0-19
        "6.17.0-19-generic",
        "6.14.0-1018-oem",
    ],
)
def test_gate_passes(release: str) -> None:
    assert gfx1151_compute_gate(release).ok


@pytest.mark.parametrize(
    ("release", "fragment"),
    [
        ("6.11.0-17-generic", "about 15.5 GB"),  # JimmyPeilinLi/AMD395_docs
        ("6.14.0-1014-oem", "older than AMD's minimum"),  # ROCm #5595
        ("6.17.0-14-generic", "older than AMD's minimum"),  # ROCm #6004
        ("6.18.3-zen1", "older than AMD's minimum"),
        ("6.17.0-19-oem", "older than AMD's minimum"),  # right ABI, wrong flavour
    ],
)
def test_gate_fails(release: str, fragment: str) -> None:
    gate = gfx1151_compute_gate(release)
    assert not gate.ok
    assert fragment in gate.reason


def test_gate_15gb_note_only_before_6_16_9() -> None:
    assert "15.5 GB" not in gfx1151_compute_gate("6.17.0-14-generic").reason


@pytest.mark.parametrize(
    ("release", "reason"), [(None, "unknown"), ("", "unknown"), ("x", "parse")]
)
def test_gate_unknown(release: str | None, reason: str) -> None:
    gate = gfx1151_compute_gate(release)
    assert not gate.ok
    assert reason in gate.reason

from __future__ import annotations

from app.hardware.procfs import MemInfo, parse_cpu_model, parse_meminfo
from tests.unit.hardware.helpers import machine_file


def test_cpu_model_strix_halo() -> None:
    text = machine_file("strix-halo-healthy", "proc/cpuinfo")
    assert parse_cpu_model(text) == "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"


def test_cpu_model_full_cpuinfo_takes_the_first_processor() -> None:
    assert parse_cpu_model(machine_file("no-amd-gpu", "proc/cpuinfo")) == "AMD EPYC"


def test_cpu_model_missing() -> None:
    assert parse_cpu_model("processor\t: 0\nflags\t\t: fpu\n") is None
    assert parse_cpu_model("") is None


def test_meminfo_real_capture_in_bytes() -> None:
    info = parse_meminfo(machine_file("no-amd-gpu", "proc/meminfo"))
    assert info == MemInfo(total_bytes=24684084 * 1024, available_bytes=22789136 * 1024)


def test_meminfo_without_memavailable() -> None:
    info = parse_meminfo(machine_file("strix-halo-healthy", "proc/meminfo"))
    assert info == MemInfo(total_bytes=131011448 * 1024, available_bytes=None)


def test_meminfo_ignores_malformed_lines() -> None:
    assert parse_meminfo("garbage\nMemTotal: lots kB\nHugePages_Total:       0\n") == MemInfo(
        None, None
    )

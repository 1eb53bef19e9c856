from __future__ import annotations

from app.hardware.rocminfo import parse_rocminfo
from app.hardware.units import KIB
from tests.unit.hardware.helpers import command_text, data_text


def test_full_capture_gmktec() -> None:
    info = parse_rocminfo(data_text("rocminfo-gmktec-evo-x2.txt"))
    assert info.kfd_loaded
    assert [a.name for a in info.agents] == [
        "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S",
        "gfx1151",
        "aie2",
    ]
    (gpu,) = info.gpus
    assert gpu.marketing_name == "Radeon 8060S Graphics"
    assert gpu.pool_bytes == 67108864 * KIB  # 64 GiB; the GROUP segment (64 KB) is ignored
    assert info.agents[2].device_type == "DSP"


def test_trimmed_capture_crow() -> None:
    info = parse_rocminfo(command_text("strix-halo-healthy", "rocminfo.txt"))
    (gpu,) = info.gpus
    assert (gpu.name, gpu.marketing_name) == ("gfx1151", "AMD Radeon Graphics")
    assert gpu.pool_bytes == 130023424 * KIB  # 124 GiB = the GTT limit
    assert info.agents[0].pool_bytes == 131011448 * KIB


def test_empty_output() -> None:
    info = parse_rocminfo("")
    assert not info.kfd_loaded
    assert info.agents == ()

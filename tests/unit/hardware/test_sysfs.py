from __future__ import annotations

import pytest

from app.hardware.sysfs import gfx_name, parse_int, parse_kfd_properties
from tests.unit.hardware.helpers import machine_file

NODES = "sys/class/kfd/kfd/topology/nodes"


def test_kfd_gpu_node() -> None:
    node = parse_kfd_properties("1", machine_file("strix-halo-healthy", f"{NODES}/1/properties"))
    assert node.is_gpu
    assert node.gfx_target_version == 110501
    assert node.gfx_name == "gfx1151"
    assert node.simd_count == 80
    assert node.vendor_id == 0x1002
    assert node.device_id == 0x1586
    assert node.drm_render_minor == 128


def test_kfd_cpu_node() -> None:
    node = parse_kfd_properties("0", machine_file("strix-halo-healthy", f"{NODES}/0/properties"))
    assert not node.is_gpu
    assert node.vendor_id is None


@pytest.mark.parametrize(
    ("version", "name"),
    [(110501, "gfx1151"), (110000, "gfx1100"), (90010, "gfx90a"), (110502, "gfx1152")],
)
def test_gfx_name(version: int, name: str) -> None:
    assert gfx_name(version) == name


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0x1002\n", 0x1002),
        ("133143986176\n", 133143986176),
        ("0x038000", 0x038000),
        ("", None),
        (None, None),
        ("n/a", None),
    ],
)
def test_parse_int(text: str | None, value: int | None) -> None:
    assert parse_int(text) == value

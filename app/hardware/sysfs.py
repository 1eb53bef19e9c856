"""Pure parsers for the sysfs files the probe reads.

- ``/sys/bus/pci/devices/*/{vendor,device}``: ``0x1002`` / ``0x1586`` is Strix Halo's GPU.
- ``/sys/class/kfd/kfd/topology/nodes/*/properties``: ``key value`` lines; a GPU node has
  ``simd_count > 0`` and ``gfx_target_version`` (110501 = gfx1151).
- ``/sys/class/drm/card*/device/mem_info_{vram,gtt}_{total,used}``: decimal bytes (kernel
  ``Documentation/gpu/amdgpu/driver-misc.rst``). On Strix Halo ``vram`` is the BIOS carve-out.
- ``/sys/module/{ttm,amdttm}/parameters/pages_limit``: the GTT cap in 4 KiB pages.
"""

from __future__ import annotations

from dataclasses import dataclass

AMD_VENDOR_ID = 0x1002
STRIX_HALO_DEVICE_ID = 0x1586
GFX1151_TARGET_VERSION = 110501


@dataclass(frozen=True)
class PciDevice:
    slot: str
    vendor: int
    device: int
    #: PCI class code, e.g. ``0x038000`` (display controller); ``None`` when unreadable.
    class_code: int | None

    @property
    def is_display(self) -> bool:
        return self.class_code is not None and self.class_code >> 16 == 0x03


@dataclass(frozen=True)
class KfdNode:
    node: str
    gfx_target_version: int
    simd_count: int
    vendor_id: int | None
    device_id: int | None
    drm_render_minor: int | None

    @property
    def is_gpu(self) -> bool:
        return self.simd_count > 0 and self.gfx_target_version > 0

    @property
    def gfx_name(self) -> str:
        return gfx_name(self.gfx_target_version)


@dataclass(frozen=True)
class DrmCard:
    """One ``/sys/class/drm/cardN`` with its PCI id and amdgpu memory counters (bytes)."""

    name: str
    pci_vendor: int | None
    pci_device: int | None
    vram_total: int | None
    vram_used: int | None
    gtt_total: int | None
    gtt_used: int | None

    @property
    def is_amdgpu(self) -> bool:
        return self.gtt_total is not None or self.vram_total is not None


def parse_int(text: str | None) -> int | None:
    """A decimal or ``0x`` hex integer file; ``None`` when absent or malformed."""
    if text is None:
        return None
    value = text.strip()
    try:
        return int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return None


def gfx_name(target_version: int) -> str:
    """KFD ``gfx_target_version`` -> LLVM target: 110501 -> ``gfx1151``, 90010 -> ``gfx90a``."""
    major, rest = divmod(target_version, 10000)
    minor, stepping = divmod(rest, 100)
    return f"gfx{major}{minor:x}{stepping:x}"


def parse_kfd_properties(node: str, text: str) -> KfdNode:
    """One KFD topology ``properties`` file (``key value`` per line)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            values[parts[0]] = int(parts[1])
    return KfdNode(
        node=node,
        gfx_target_version=values.get("gfx_target_version", 0),
        simd_count=values.get("simd_count", 0),
        vendor_id=values.get("vendor_id"),
        device_id=values.get("device_id"),
        drm_render_minor=values.get("drm_render_minor"),
    )

"""Read the operating-system facts under a root directory (``/`` or a fixture laid out like it).

This is the I/O side; every value is handed to a pure parser. Missing or unreadable files give
``None`` or empty tuples, never exceptions.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from app.hardware.procfs import MemInfo, parse_cpu_model, parse_meminfo
from app.hardware.sysfs import (
    AMD_VENDOR_ID,
    GFX1151_TARGET_VERSION,
    STRIX_HALO_DEVICE_ID,
    DrmCard,
    KfdNode,
    PciDevice,
    parse_int,
    parse_kfd_properties,
)
from app.hardware.vulkan import VulkanIcd, classify_icd

ICD_DIRS = ("usr/share/vulkan/icd.d", "etc/vulkan/icd.d", "usr/local/share/vulkan/icd.d")
LOADER_PATHS = (
    "usr/lib/x86_64-linux-gnu/libvulkan.so.1",
    "usr/lib64/libvulkan.so.1",
    "usr/lib/libvulkan.so.1",
)
_CARD = re.compile(r"^card\d+$")


@dataclass(frozen=True)
class DeviceNode:
    """A device file such as ``/dev/kfd``: does it exist, can this user open it read-write."""

    path: str
    exists: bool
    accessible: bool


@dataclass(frozen=True)
class OsFacts:
    cpu_model: str | None
    kernel: str | None
    hsa_override_gfx_version: str | None
    pci_devices: tuple[PciDevice, ...]
    kfd: DeviceNode
    render_nodes: tuple[DeviceNode, ...]
    kfd_nodes: tuple[KfdNode, ...]
    drm_cards: tuple[DrmCard, ...]
    ttm_pages_limit: int | None
    amdttm_pages_limit: int | None
    meminfo: MemInfo
    vulkan_loader: bool
    vulkan_icds: tuple[VulkanIcd, ...]

    @property
    def strix_halo(self) -> bool:
        """PCI ``1002:1586`` or a KFD node with gfx1151."""
        return any(
            d.vendor == AMD_VENDOR_ID and d.device == STRIX_HALO_DEVICE_ID for d in self.pci_devices
        ) or any(n.gfx_target_version == GFX1151_TARGET_VERSION for n in self.kfd_nodes)

    @property
    def amd_gpu(self) -> bool:
        return self.strix_halo or any(
            d.vendor == AMD_VENDOR_ID and d.is_display for d in self.pci_devices
        )

    @property
    def gpu_kfd_nodes(self) -> tuple[KfdNode, ...]:
        return tuple(node for node in self.kfd_nodes if node.is_gpu)

    @property
    def amdgpu_card(self) -> DrmCard | None:
        """The amdgpu card with memory counters (the smallest carve-out first: the APU)."""
        cards = [card for card in self.drm_cards if card.is_amdgpu]
        return min(cards, key=lambda c: c.vram_total or 0) if cards else None

    @property
    def ttm_limit_pages(self) -> int | None:
        """``amdttm`` (DKMS driver) wins over ``ttm`` when both are loaded (ROCm #5595)."""
        return self.amdttm_pages_limit or self.ttm_pages_limit


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None


def _can_open(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return False
    os.close(fd)
    return True


def _node(root: Path, rel: str, access: Mapping[str, bool], open_check: bool) -> DeviceNode:
    path = root / rel
    exists = path.exists()
    shown = "/" + rel
    if not exists:
        accessible = False
    elif shown in access:
        accessible = access[shown]
    else:
        accessible = _can_open(path) if open_check else True
    return DeviceNode(path=shown, exists=exists, accessible=accessible)


def _pci_devices(root: Path) -> tuple[PciDevice, ...]:
    devices = []
    for slot in sorted((root / "sys/bus/pci/devices").glob("*")):
        vendor, device = parse_int(_read(slot / "vendor")), parse_int(_read(slot / "device"))
        if vendor is not None and device is not None:
            devices.append(PciDevice(slot.name, vendor, device, parse_int(_read(slot / "class"))))
    return tuple(devices)


def _drm_cards(root: Path) -> tuple[DrmCard, ...]:
    cards = []
    drm = root / "sys/class/drm"
    for card in sorted(p for p in drm.glob("card*") if _CARD.match(p.name)):
        dev = card / "device"
        cards.append(
            DrmCard(
                name=card.name,
                pci_vendor=parse_int(_read(dev / "vendor")),
                pci_device=parse_int(_read(dev / "device")),
                vram_total=parse_int(_read(dev / "mem_info_vram_total")),
                vram_used=parse_int(_read(dev / "mem_info_vram_used")),
                gtt_total=parse_int(_read(dev / "mem_info_gtt_total")),
                gtt_used=parse_int(_read(dev / "mem_info_gtt_used")),
            )
        )
    return tuple(cards)


def _icds(root: Path) -> tuple[VulkanIcd, ...]:
    icds = []
    for rel in ICD_DIRS:
        for manifest in sorted((root / rel).glob("*.json")):
            icds.append(classify_icd("/" + str(manifest.relative_to(root)), _read(manifest)))
    return tuple(icds)


def read_os_facts(
    root: Path,
    *,
    kernel: str | None,
    env: Mapping[str, str],
    access: Mapping[str, bool] | None = None,
    open_check: bool = True,
) -> OsFacts:
    """Everything the policy needs from files under ``root``.

    Device files count as accessible when this process can open them read-write. ``access``
    overrides that per absolute path, and ``open_check=False`` (fixtures, whose device files are
    plain files) takes every existing device file not in ``access`` as accessible.
    """
    access = access or {}
    kfd_root = root / "sys/class/kfd/kfd/topology/nodes"
    kfd_nodes = tuple(
        parse_kfd_properties(node.name, text)
        for node in sorted(kfd_root.glob("*"))
        if (text := _read(node / "properties")) is not None
    )
    render = sorted((root / "dev/dri").glob("renderD*"))
    return OsFacts(
        cpu_model=parse_cpu_model(_read(root / "proc/cpuinfo") or ""),
        kernel=kernel,
        hsa_override_gfx_version=env.get("HSA_OVERRIDE_GFX_VERSION") or None,
        pci_devices=_pci_devices(root),
        kfd=_node(root, "dev/kfd", access, open_check),
        render_nodes=tuple(_node(root, f"dev/dri/{p.name}", access, open_check) for p in render),
        kfd_nodes=kfd_nodes,
        drm_cards=_drm_cards(root),
        ttm_pages_limit=parse_int(_read(root / "sys/module/ttm/parameters/pages_limit")),
        amdttm_pages_limit=parse_int(_read(root / "sys/module/amdttm/parameters/pages_limit")),
        meminfo=parse_meminfo(_read(root / "proc/meminfo") or ""),
        vulkan_loader=any((root / rel).exists() for rel in LOADER_PATHS),
        vulkan_icds=_icds(root),
    )

"""Pure parsers for Vulkan: ICD manifest files and ``vulkaninfo --summary`` output.

Driver names follow the Vulkan ``driverID``: ``DRIVER_ID_MESA_RADV`` (RADV, preferred),
``DRIVER_ID_AMD_OPEN_SOURCE`` (AMDVLK: deprecated, 2 GiB allocation cap, slower prompt
processing), ``DRIVER_ID_AMD_PROPRIETARY`` and ``DRIVER_ID_MESA_LLVMPIPE`` (the software
rasterizer, ``deviceType = PHYSICAL_DEVICE_TYPE_CPU``, vendor ``0x10005``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

Driver = Literal["radv", "amdvlk", "amd-proprietary", "llvmpipe", "other"]

_DRIVER_IDS: dict[str, Driver] = {
    "DRIVER_ID_MESA_RADV": "radv",
    "DRIVER_ID_AMD_OPEN_SOURCE": "amdvlk",
    "DRIVER_ID_AMD_PROPRIETARY": "amd-proprietary",
    "DRIVER_ID_MESA_LLVMPIPE": "llvmpipe",
}
# Substrings of an ICD manifest's file name or library path.
_ICD_HINTS: tuple[tuple[str, Driver], ...] = (
    ("radeon", "radv"),
    ("amdvlk", "amdvlk"),
    ("amd_icd", "amdvlk"),
    ("amd_pro", "amd-proprietary"),
    ("lvp", "llvmpipe"),
)
_GPU_HEADER = re.compile(r"^GPU(\d+):\s*$")
_KEY_VALUE = re.compile(r"^\s*(\w+)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True)
class VulkanIcd:
    """One ICD manifest (``/usr/share/vulkan/icd.d/*.json``)."""

    path: str
    library: str | None
    driver: Driver


@dataclass(frozen=True)
class VulkanDevice:
    """One ``GPU<n>:`` block of ``vulkaninfo --summary``."""

    index: int
    name: str
    device_type: str
    vendor_id: int | None
    device_id: int | None
    driver_id: str
    driver_name: str
    driver_info: str

    @property
    def driver(self) -> Driver:
        if self.driver_id in _DRIVER_IDS:
            return _DRIVER_IDS[self.driver_id]
        return "llvmpipe" if self.is_software else "other"

    @property
    def is_software(self) -> bool:
        return self.device_type.endswith("TYPE_CPU")


def classify_icd(path: str, manifest_text: str | None) -> VulkanIcd:
    """An ICD manifest's driver, from its ``ICD.library_path`` or else its file name."""
    library: str | None = None
    if manifest_text:
        try:
            data = json.loads(manifest_text)
        except ValueError:
            data = None
        icd = data.get("ICD") if isinstance(data, dict) else None
        if isinstance(icd, dict) and isinstance(icd.get("library_path"), str):
            library = icd["library_path"]
    haystack = f"{path.rsplit('/', 1)[-1]} {library or ''}".lower()
    driver: Driver = next((drv for hint, drv in _ICD_HINTS if hint in haystack), "other")
    return VulkanIcd(path=path, library=library, driver=driver)


def _hex(value: str | None) -> int | None:
    if not value:
        return None
    try:
        return int(value.split()[0], 16)
    except ValueError:
        return None


def parse_vulkaninfo(text: str) -> tuple[VulkanDevice, ...]:
    """Devices of ``vulkaninfo --summary`` (also accepts the long form: first value wins)."""
    blocks: list[tuple[int, dict[str, str]]] = []
    for line in text.splitlines():
        header = _GPU_HEADER.match(line.strip())
        if header:
            blocks.append((int(header.group(1)), {}))
            continue
        pair = _KEY_VALUE.match(line)
        if blocks and pair:
            blocks[-1][1].setdefault(pair.group(1), pair.group(2))
    devices = []
    for index, fields in blocks:
        if "deviceName" not in fields:
            continue
        devices.append(
            VulkanDevice(
                index=index,
                name=fields["deviceName"],
                device_type=fields.get("deviceType", ""),
                vendor_id=_hex(fields.get("vendorID")),
                device_id=_hex(fields.get("deviceID")),
                driver_id=fields.get("driverID", ""),
                driver_name=fields.get("driverName", ""),
                driver_info=fields.get("driverInfo", ""),
            )
        )
    return tuple(devices)

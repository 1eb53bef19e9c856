from __future__ import annotations

from app.hardware.vulkan import classify_icd, parse_vulkaninfo
from tests.unit.hardware.helpers import command_text, data_text, machine_file

RADEON_ICD = "usr/share/vulkan/icd.d/radeon_icd.x86_64.json"
LVP_ICD = "usr/share/vulkan/icd.d/lvp_icd.x86_64.json"


def test_summary_llvmpipe_real_capture() -> None:
    (device,) = parse_vulkaninfo(data_text("vulkaninfo-summary-llvmpipe-debian12.txt"))
    assert device.index == 0
    assert device.name == "llvmpipe (LLVM 15.0.6, 256 bits)"
    assert device.is_software
    assert device.driver == "llvmpipe"
    assert device.vendor_id == 0x10005
    assert device.driver_info == "Mesa 22.3.6 (LLVM 15.0.6)"


def test_summary_radv_and_llvmpipe() -> None:
    radv, lvp = parse_vulkaninfo(command_text("strix-halo-healthy", "vulkaninfo-summary.txt"))
    assert (radv.index, radv.name) == (0, "AMD Radeon Graphics (RADV GFX1151)")
    assert radv.driver == "radv"
    assert not radv.is_software
    assert (radv.vendor_id, radv.device_id) == (0x1002, 0x1586)
    assert radv.device_type == "PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU"
    assert (lvp.index, lvp.driver, lvp.is_software) == (1, "llvmpipe", True)


def test_summary_amdvlk() -> None:
    (device,) = parse_vulkaninfo(command_text("strix-halo-amdvlk", "vulkaninfo-summary.txt"))
    assert device.driver == "amdvlk"
    assert device.driver_info == "2025.Q2.1 (LLPC)"


def test_summary_no_driver_is_empty() -> None:
    assert parse_vulkaninfo(command_text("strix-halo-no-icd", "vulkaninfo-summary.txt")) == ()


def test_long_form_first_value_wins() -> None:
    text = (
        "GPU0:\nVkPhysicalDeviceProperties:\n---\n\tapiVersion = 1.4.318 (4211006)\n"
        "\tvendorID = 0x1002\n\tdeviceType = PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU\n"
        "\tdeviceName = AMD Radeon Graphics (RADV GFX1151)\n\tdeviceName = later\n"
    )
    (device,) = parse_vulkaninfo(text)
    assert device.name == "AMD Radeon Graphics (RADV GFX1151)"
    assert device.driver == "other"  # no driverID in this block


def test_icd_from_real_manifests() -> None:
    radeon = classify_icd("/" + RADEON_ICD, machine_file("strix-halo-healthy", RADEON_ICD))
    assert radeon.driver == "radv"
    assert radeon.library == "/usr/lib/x86_64-linux-gnu/libvulkan_radeon.so"
    lvp = classify_icd("/" + LVP_ICD, machine_file("strix-halo-healthy", LVP_ICD))
    assert lvp.driver == "llvmpipe"


def test_icd_by_file_name_when_content_is_unreadable() -> None:
    assert classify_icd("/etc/vulkan/icd.d/amd_icd64.json", "").driver == "amdvlk"
    assert classify_icd("/x/intel_icd.x86_64.json", "{not json").driver == "other"

"""Pure per-backend checks: can Vulkan / ROCm work here, and if not, what to install or change.

Each check returns an ``Assessment``; ``choice.choose_backend`` turns them into a decision.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field

from app.hardware.kernel import gfx1151_compute_gate
from app.hardware.llama_build import LlamaBuild, LlamaDevice
from app.hardware.os_facts import OsFacts
from app.hardware.rocminfo import RocmInfo
from app.hardware.sysfs import AMD_VENDOR_ID, GFX1151_TARGET_VERSION
from app.hardware.units import GIB
from app.hardware.vulkan import VulkanDevice

REINSTALL_VULKAN = (
    'reinstall with CMAKE_ARGS="-DGGML_VULKAN=on" pip install --force-reinstall --no-cache-dir '
    "llama-cpp-python (needs the Vulkan headers and glslc)"
)
REINSTALL_HIP = (
    'reinstall with CMAKE_ARGS="-DGGML_HIP=on -DAMDGPU_TARGETS=gfx1151" pip install '
    "--force-reinstall --no-cache-dir llama-cpp-python (with ROCm's clang as CC/CXX/HIPCXX), "
    "or point LLAMA_CPP_LIB_PATH at a HIP build"
)
JOIN_GROUPS = "add the user to the render and video groups (sudo usermod -aG render,video $USER)"
AMDVLK_WARNING = (
    "the Vulkan driver is AMDVLK: deprecated upstream, 2 GiB single-allocation cap and slower "
    "prompt processing on gfx1151; install mesa-vulkan-drivers (RADV) and set AMD_VULKAN_ICD=RADV"
)
#: Vulkan device names of software rasterizers (Mesa llvmpipe/lavapipe, Google SwiftShader).
SOFTWARE_VULKAN_NAMES = ("llvmpipe", "lavapipe", "swiftshader")
#: A ROCm GPU pool this small means a kernel before 6.16.9 (ROCm #5444: "only 15.5 GB").
SMALL_ROCM_POOL = 17 * GIB


@dataclass
class Assessment:
    ok: bool = True
    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def fail(self, reason: str) -> None:
        self.ok = False
        self.reasons.append(reason)


def _hardware(vulkan: tuple[VulkanDevice, ...] | None) -> tuple[VulkanDevice, ...]:
    return tuple(d for d in vulkan or () if not d.is_software)


def _driver_notes(
    facts: OsFacts, build: LlamaBuild, vulkan: tuple[VulkanDevice, ...] | None, result: Assessment
) -> None:
    """Which Vulkan driver llama.cpp will use, and the AMDVLK warning."""
    amd = [d for d in _hardware(vulkan) if d.vendor_id == AMD_VENDOR_ID]
    drivers = {d.driver for d in amd}
    if not drivers:  # no vulkaninfo: fall back to ggml's device name and the ICD manifests
        names = " ".join(d.description for d in build.gpus("Vulkan"))
        icds = {icd.driver for icd in facts.vulkan_icds}
        if "RADV" in names:
            drivers = {"radv"}
        elif icds & {"amdvlk", "amd-proprietary"} and "radv" not in icds:
            drivers = icds & {"amdvlk", "amd-proprietary"}
    if "radv" in drivers and drivers & {"amdvlk", "amd-proprietary"}:
        result.env["AMD_VULKAN_ICD"] = "RADV"
        result.reasons.append("RADV and AMDVLK are both installed: AMD_VULKAN_ICD=RADV picks RADV")
    elif drivers & {"amdvlk", "amd-proprietary"}:
        result.warnings.append(AMDVLK_WARNING)
    if "radv" in drivers:
        info = next((d.driver_info for d in amd if d.driver == "radv" and d.driver_info), "")
        result.reasons.append("driver: RADV" + (f" ({info})" if info else ""))


def _is_software(device: LlamaDevice, vulkan: tuple[VulkanDevice, ...] | None) -> bool:
    """Whether a llama.cpp device is a software rasterizer.

    llama.cpp lists llvmpipe only when ``GGML_VK_VISIBLE_DEVICES`` selects it, and then as type
    ``GPU`` (ggml calls every Vulkan device that is not an integrated GPU a GPU).
    """
    text = device.description.lower()
    return any(name in text for name in SOFTWARE_VULKAN_NAMES) or any(
        d.is_software and d.name == device.description for d in vulkan or ()
    )


def _why_no_vulkan_gpu(
    facts: OsFacts, vulkan: tuple[VulkanDevice, ...] | None, icd_drivers: AbstractSet[str]
) -> str:
    """Why llama.cpp's Vulkan backend sees no GPU on a machine with a render node."""
    if not any(node.accessible for node in facts.render_nodes):
        return f"{facts.render_nodes[0].path} is not accessible: {JOIN_GROUPS}, then log in again"
    if not facts.vulkan_loader:
        return "the Vulkan loader libvulkan.so.1 is not installed: apt install libvulkan1"
    if not facts.vulkan_icds:
        return (
            "no Vulkan ICD installed (loader present, no driver): apt install mesa-vulkan-drivers"
        )
    if icd_drivers <= {"llvmpipe"} or (vulkan and not _hardware(vulkan)):
        return (
            "only the llvmpipe software rasterizer is installed: "
            "apt install mesa-vulkan-drivers for RADV"
        )
    return "llama.cpp's Vulkan backend found no GPU device"


def assess_vulkan(
    facts: OsFacts,
    build: LlamaBuild,
    vulkan: tuple[VulkanDevice, ...] | None,
    *,
    allow_software: bool = False,
) -> Assessment:
    result = Assessment()
    software = [d for d in vulkan or () if d.is_software]
    icd_drivers = {icd.driver for icd in facts.vulkan_icds}
    software_note = (
        "vulkaninfo lists only "
        + ", ".join(d.name for d in software)
        + ", which llama.cpp never uses as a GPU"
    )
    if not facts.render_nodes:
        result.fail(
            "no /dev/dri render node: the amdgpu driver is not loaded "
            "(in a container, pass --device /dev/dri)"
            if facts.amd_gpu
            else "no GPU found (no /dev/dri render node)"
        )
        if software:
            result.reasons.append(software_note)
        # llvmpipe needs no render node: only a forced software device goes on from here
        if not (allow_software and (software or "llvmpipe" in icd_drivers)):
            return result
    if not build.has_backend("Vulkan"):
        result.fail(f"this llama-cpp-python build has no Vulkan backend: {REINSTALL_VULKAN}")
        return result
    listed = build.gpus("Vulkan")
    listed_software = [d for d in listed if _is_software(d, vulkan)]
    gpus = tuple(d for d in listed if d not in listed_software)
    if gpus and facts.render_nodes:
        shown = ", ".join(f"{d.name} = {d.description} ({d.type})" for d in gpus)
        result.reasons.append(f"llama.cpp's Vulkan backend sees {shown}")
        _driver_notes(facts, build, vulkan, result)
        return result
    if facts.render_nodes:
        result.fail(_why_no_vulkan_gpu(facts, vulkan, icd_drivers))
        if software:
            result.reasons.append(software_note)
    if listed_software:
        result.reasons.append(
            "llama.cpp lists "
            + ", ".join(f"{d.name} = {d.description}" for d in listed_software)
            + " only because GGML_VK_VISIBLE_DEVICES selects it: a software rasterizer, not a GPU"
        )
    if allow_software and (software or listed_software or "llvmpipe" in icd_drivers):
        index = software[0].index if software else 0
        result.ok = True
        result.env["GGML_VK_VISIBLE_DEVICES"] = str(index)
        result.warnings.append(
            f"forcing the software rasterizer (GGML_VK_VISIBLE_DEVICES={index}): "
            "a real Vulkan code path, for testing only, slower than the CPU backend"
        )
    return result


def assess_rocm(facts: OsFacts, build: LlamaBuild, rocm: RocmInfo | None) -> Assessment:
    result = Assessment()
    if not build.has_backend("ROCm"):
        result.fail(f"this llama-cpp-python build has no ROCm/HIP backend: {REINSTALL_HIP}")
    rocm_gpus = rocm.gpus if rocm else ()
    if not any(n.gfx_target_version == GFX1151_TARGET_VERSION for n in facts.gpu_kfd_nodes) and (
        not any(agent.name == "gfx1151" for agent in rocm_gpus)
    ):
        found = ", ".join(n.gfx_name for n in facts.gpu_kfd_nodes) or "none"
        result.fail(f"no gfx1151 GPU in the KFD topology (GPU nodes: {found})")
    gate = gfx1151_compute_gate(facts.kernel)
    if not gate.ok:
        result.fail(gate.reason)
    override = facts.hsa_override_gfx_version
    if override and override != "11.5.1":
        result.fail(
            f"HSA_OVERRIDE_GFX_VERSION={override} makes ROCm run another target's "
            "kernels on gfx1151 (crashes, wrong results): unset it"
        )
    if not facts.kfd.exists:
        result.fail(
            "no /dev/kfd: the amdkfd driver is not loaded (in a container, pass --device /dev/kfd)"
        )
    elif not facts.kfd.accessible:
        result.fail(f"/dev/kfd not accessible: {JOIN_GROUPS}, then log in again")
    gpus = build.gpus("ROCm")
    if build.has_backend("ROCm") and not gpus:
        result.fail("llama.cpp's ROCm backend found no GPU device")
    if not result.ok:
        return result
    shown = ", ".join(f"{d.name} = {d.description} ({d.type})" for d in gpus)
    result.reasons += [gate.reason, f"llama.cpp's ROCm backend sees {shown}"]
    for agent in rocm_gpus:
        if agent.pool_bytes is not None and agent.pool_bytes < SMALL_ROCM_POOL:
            result.warnings.append(
                f"rocminfo: {agent.name} pool is only {agent.pool_bytes / GIB:.1f} GiB "
                "(kernel or TTM limit; see ROCm issue #5444)"
            )
    result.warnings.append(
        "ROCm on gfx1151: some llama.cpp builds return wrong logits for prompts longer than "
        "n_ubatch (llama.cpp #28211); compare against the CPU before trusting it"
    )
    return result

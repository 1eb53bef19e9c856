"""``format_report(report)``: the probe as a readable text table (``halo probe``)."""

from __future__ import annotations

from app.hardware.llama_build import CpuBackend
from app.hardware.os_facts import DeviceNode, OsFacts
from app.hardware.probe import ProbeReport
from app.hardware.units import TTM_PAGE_BYTES, gib, human

WIDTH = 15


def _row(label: str, value: str) -> str:
    lines = value.splitlines() or [""]
    pad = " " * (WIDTH + 2)
    return "\n".join([f"  {label:<{WIDTH}}{lines[0]}", *(pad + line for line in lines[1:])])


def _node(node: DeviceNode) -> str:
    if not node.exists:
        return f"{node.path} absent"
    return f"{node.path} " + ("accessible" if node.accessible else "NOT accessible")


def _machine(facts: OsFacts) -> list[str]:
    rows = [
        _row("CPU", facts.cpu_model or "?"),
        _row("Kernel", facts.kernel or "?"),
        _row("Strix Halo", "yes (Radeon 8060S class, gfx1151)" if facts.strix_halo else "no"),
        _row("/dev/kfd", _node(facts.kfd)),
        _row("Render nodes", ", ".join(_node(n) for n in facts.render_nodes) or "none"),
    ]
    gpus = [f"node {n.node}: {n.gfx_name} ({n.simd_count} SIMDs)" for n in facts.gpu_kfd_nodes]
    rows.append(_row("KFD GPU nodes", ", ".join(gpus) or "none"))
    card = facts.amdgpu_card
    if card:
        rows.append(
            _row(
                "amdgpu memory",
                (
                    f"{card.name}: VRAM {human(card.vram_total)} (used {human(card.vram_used)}), "
                    f"GTT {human(card.gtt_total)} (used {human(card.gtt_used)})"
                ),
            )
        )
    limits = [
        f"{name}.pages_limit={pages} ({gib(pages * TTM_PAGE_BYTES)})"
        for name, pages in (("ttm", facts.ttm_pages_limit), ("amdttm", facts.amdttm_pages_limit))
        if pages
    ]
    rows.append(_row("TTM limit", ", ".join(limits) or "not exposed"))
    mem = facts.meminfo
    rows.append(
        _row("RAM", f"MemTotal {human(mem.total_bytes)}, MemAvailable {human(mem.available_bytes)}")
    )
    rows.append(_row("HSA override", facts.hsa_override_gfx_version or "unset"))
    icds = ", ".join(f"{i.path.rsplit('/', 1)[-1]} ({i.driver})" for i in facts.vulkan_icds)
    rows.append(
        _row("Vulkan", f"loader {'yes' if facts.vulkan_loader else 'no'}; ICDs: {icds or 'none'}")
    )
    return rows


def _tools(report: ProbeReport) -> list[str]:
    if report.vulkan_devices is None:
        vulkan = "not available"
    else:
        vulkan = (
            "\n".join(
                f"GPU{d.index}: {d.name} ({d.device_type.removeprefix('PHYSICAL_DEVICE_TYPE_')}, "
                f"{d.driver}{', ' + d.driver_info if d.driver_info else ''})"
                for d in report.vulkan_devices
            )
            or "no devices"
        )
    if report.rocm is None:
        rocm = "not available"
    else:
        rocm = (
            "\n".join(
                f"{a.name} ({a.marketing_name}), pool {human(a.pool_bytes)}"
                for a in report.rocm.gpus
            )
            or "no GPU agent"
        )
    return [_row("vulkaninfo", vulkan), _row("rocminfo", rocm)]


def _llama(report: ProbeReport) -> list[str]:
    build = report.llama
    if build is None:
        return [_row("status", "not inspected")]
    devices = "\n".join(
        f"{d.name} [{d.type}] {d.description}: {human(d.memory_free)} free"
        f" of {human(d.memory_total)}"
        for d in build.devices
    )
    return [
        _row("lib dir", build.lib_dir or "?"),
        _row("backends", ", ".join(build.backends) or "none"),
        _row("GPU offload", "yes" if build.supports_gpu_offload else "no"),
        _row("devices", devices or "none"),
        *_cpu(build.cpu),
    ]


def _cpu(cpu: CpuBackend | None) -> list[str]:
    if cpu is None:
        return [_row("CPU variant", "not reported")]
    if cpu.mode == "builtin":
        variant = "built in (one CPU backend linked into the build)"
    else:
        variant = cpu.variant or "NONE USABLE"
        variant += "".join(f"\n- {r}" for r in cpu.reasons)
        variant += "".join(f"\n  not {name}: {why}" for name, why in sorted(cpu.skipped.items())
                           if not why.startswith("scores lower"))
    on = [name for name, value in cpu.features.items() if value == "1"]
    other = [f"{name}={value}" for name, value in cpu.features.items() if value not in ("1", "")]
    return [
        _row("CPU variant", variant),
        _row("CPU features", " ".join(on + other) or "not reported"),
        _row("AMX check", f"{cpu.amx_verdict}: {cpu.amx_detail}"),
    ]


def format_report(report: ProbeReport) -> str:
    choice, pool = report.choice, report.pool
    status = "ok" if choice.ok else "REQUESTED BACKEND UNUSABLE"
    env = " ".join(f"{k}={v}" for k, v in choice.env.items())
    lines = [
        f"halo probe ({report.elapsed_seconds:.2f} s)",
        "",
        "Machine",
        *_machine(report.facts),
        *_tools(report),
        "",
        "llama.cpp build",
        *_llama(report),
        "",
        "Backend",
        _row("choice", f"{choice.backend} (requested {choice.requested}: {status})"),
        _row(
            "settings",
            f"n_gpu_layers={choice.n_gpu_layers} use_mmap={choice.use_mmap} "
            f"flash_attn={choice.flash_attn}",
        ),
        _row("env", env or "-"),
        _row("lib path", choice.lib_path or "installed llama_cpp package"),
        _row("reasons", "\n".join(f"- {r}" for r in choice.reasons) or "-"),
        _row("warnings", "\n".join(f"! {w}" for w in choice.warnings) or "-"),
        "",
        "Memory pool",
        _row("budget", f"{gib(pool.budget_bytes)} ({pool.source})"),
        _row("reasons", "\n".join(f"- {r}" for r in pool.reasons) or "-"),
        _row("suggestions", "\n".join(f"> {s}" for s in pool.suggestions) or "-"),
    ]
    if report.errors:
        lines += ["", "Probe errors", *(f"  - {e}" for e in report.errors)]
    return "\n".join(lines) + "\n"

"""The memory budget the scheduler may fill with models (pure).

- An explicit budget (``memory_budget`` in the settings) always wins.
- A GPU backend on an AMD APU (Strix Halo): the GPU works out of GTT, i.e. system RAM mapped for
  the GPU, up to the TTM limit (``mem_info_gtt_total``, else ``pages_limit * 4096``). GTT pages
  are ordinary RAM, so the budget is ``min(GTT free, MemAvailable - reserve)``.
  With a BIOS carve-out above 1 GiB, the carve-out (``mem_info_vram_total``) is memory the OS
  never sees: its free part is added once, and GTT stays bounded by the RAM the OS does see,
  so VRAM and GTT are never double-counted (ROCm issue #6004).
- Otherwise (CPU backend, or no amdgpu counters): ``MemTotal - reserve``, at most MemAvailable.

When the GTT limit is far below the RAM, the suggestions say how to raise it
(``ttm.pages_limit``, pages = GiB * 262144, or AMD's ``amd-ttm --set``).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.hardware.os_facts import OsFacts
from app.hardware.units import GIB, TTM_PAGE_BYTES, TTM_PAGES_PER_GIB, gib

DEFAULT_RESERVE = 6 * GIB
#: A carve-out above this is a deliberate BIOS setting, not the 512 MiB minimum.
SMALL_CARVE_OUT = 1 * GIB
#: Suggest raising the GTT limit when it is below this share of the RAM.
LOW_GTT_SHARE = 0.75
#: What to leave to the OS when raising the limit (AMD's and kyuz0's 124-of-128 GiB practice).
OS_HEADROOM_GIB = 4


@dataclass(frozen=True)
class MemoryPool:
    budget_bytes: int
    #: ``explicit``, ``gtt``, ``vram+gtt`` or ``ram``.
    source: str
    reasons: tuple[str, ...]
    suggestions: tuple[str, ...]
    reserve_bytes: int
    total_ram_bytes: int | None
    available_ram_bytes: int | None
    gtt_total_bytes: int | None
    gtt_used_bytes: int | None
    vram_total_bytes: int | None
    vram_used_bytes: int | None


def _gtt_suggestion(facts: OsFacts, gtt_total: int, ram: int) -> str:
    target = max(int(ram // GIB) - OS_HEADROOM_GIB, 1)
    pages = target * TTM_PAGES_PER_GIB
    module = "amdttm" if facts.amdttm_pages_limit else "ttm"
    return (
        f"the GTT limit ({gib(gtt_total)}) is far below the RAM ({gib(ram)}): raise it with the "
        f"kernel parameter {module}.pages_limit={pages} ({target} GiB; pages = GiB x 262144) or "
        f"`amd-ttm --set {target}` (pipx install amd-debug-tools), then reboot"
    )


def compute_pool(
    facts: OsFacts,
    *,
    backend: str,
    reserve_bytes: int = DEFAULT_RESERVE,
    explicit_budget: int | None = None,
) -> MemoryPool:
    mem = facts.meminfo
    card = facts.amdgpu_card
    pages = facts.ttm_limit_pages
    gtt_total = card.gtt_total if card and card.gtt_total else None
    if gtt_total is None and pages:
        gtt_total = pages * TTM_PAGE_BYTES
    gtt_used = card.gtt_used if card else None
    vram_total = card.vram_total if card else None
    vram_used = card.vram_used if card else None
    reasons: list[str] = []
    suggestions: list[str] = []

    ram = mem.total_bytes or 0
    if mem.available_bytes is not None:
        ram_room = mem.available_bytes - reserve_bytes
        ram_text = f"MemAvailable {gib(mem.available_bytes)} - reserve {gib(reserve_bytes)}"
    else:
        ram_room = ram - reserve_bytes
        ram_text = f"MemTotal {gib(ram)} - reserve {gib(reserve_bytes)} (no MemAvailable)"

    if explicit_budget is not None:
        budget, source = explicit_budget, "explicit"
        reasons.append(f"explicit budget {gib(explicit_budget)} (memory_budget setting)")
    elif backend != "cpu" and gtt_total is not None:
        gtt_free = gtt_total - (gtt_used or 0)
        where = "mem_info_gtt_total" if card and card.gtt_total else f"TTM pages_limit {pages}"
        reasons.append(
            f"GPU memory is GTT (system RAM mapped for the GPU): limit {gib(gtt_total)} "
            f"from {where}, {gib(gtt_used or 0)} in use"
        )
        budget = min(gtt_free, ram_room)
        reasons.append(f"bounded by the RAM: {ram_text} = {gib(ram_room)}")
        source = "gtt"
        if vram_total is not None and vram_total > SMALL_CARVE_OUT:
            vram_free = vram_total - (vram_used or 0)
            budget += vram_free
            source = "vram+gtt"
            reasons.append(
                f"BIOS carve-out of {gib(vram_total)} ({gib(vram_free)} free) is GPU memory the "
                "OS does not see; added once (VRAM and GTT are not double-counted)"
            )
            suggestions.append(
                f"the BIOS carve-out is {gib(vram_total)}: AMD recommends the minimum (512 MB) "
                "plus a larger TTM limit, which leaves the memory usable by the OS as well"
            )
        elif ram and gtt_total < LOW_GTT_SHARE * ram:
            suggestions.append(_gtt_suggestion(facts, gtt_total, ram))
    else:
        budget = ram - reserve_bytes
        source = "ram"
        reasons.append(f"system RAM: MemTotal {gib(ram)} - reserve {gib(reserve_bytes)}")
        if mem.available_bytes is not None and mem.available_bytes < budget:
            budget = mem.available_bytes
            reasons.append(f"capped at MemAvailable {gib(mem.available_bytes)}")
    return MemoryPool(
        budget_bytes=max(budget, 0),
        source=source,
        reasons=tuple(reasons),
        suggestions=tuple(suggestions),
        reserve_bytes=reserve_bytes,
        total_ram_bytes=mem.total_bytes,
        available_ram_bytes=mem.available_bytes,
        gtt_total_bytes=gtt_total,
        gtt_used_bytes=gtt_used,
        vram_total_bytes=vram_total,
        vram_used_bytes=vram_used,
    )

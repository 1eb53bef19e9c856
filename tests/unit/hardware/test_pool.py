from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from app.hardware.os_facts import OsFacts, read_os_facts
from app.hardware.pool import compute_pool
from app.hardware.procfs import MemInfo
from app.hardware.units import GIB, KIB
from tests.unit.hardware.helpers import MACHINES


def facts_of(machine: str) -> OsFacts:
    return read_os_facts(MACHINES / machine, kernel=None, env={}, open_check=False)


def test_explicit_budget_wins() -> None:
    pool = compute_pool(facts_of("strix-halo-healthy"), backend="vulkan", explicit_budget=96 * GIB)
    assert (pool.budget_bytes, pool.source) == (96 * GIB, "explicit")


def test_gtt_bounded_by_ram_minus_reserve() -> None:
    pool = compute_pool(facts_of("strix-halo-healthy"), backend="vulkan")
    assert pool.source == "gtt"
    assert pool.gtt_total_bytes == 124 * GIB
    assert pool.budget_bytes == 131011448 * KIB - 6 * GIB  # MemTotal - reserve < 124 GiB
    assert pool.suggestions == ()


def test_memavailable_and_gtt_used_bound_the_gtt_pool() -> None:
    facts = facts_of("strix-halo-healthy")
    facts = replace(facts, meminfo=MemInfo(131011448 * KIB, 100 * GIB))
    pool = compute_pool(facts, backend="rocm", reserve_bytes=4 * GIB)
    assert pool.budget_bytes == 96 * GIB
    card = facts.amdgpu_card
    assert card is not None
    used = replace(card, gtt_used=40 * GIB)
    pool = compute_pool(replace(facts, drm_cards=(used,)), backend="rocm", reserve_bytes=4 * GIB)
    assert pool.budget_bytes == 84 * GIB


def test_default_gtt_limit_suggests_raising_it() -> None:
    pool = compute_pool(facts_of("strix-halo-default-gtt"), backend="vulkan")
    assert pool.source == "gtt"
    assert pool.budget_bytes == 16469033 * 4096
    (suggestion,) = pool.suggestions
    assert "ttm.pages_limit=31719424" in suggestion
    assert "amd-ttm --set 121" in suggestion


def test_amdttm_module_named_in_the_suggestion() -> None:
    facts = replace(facts_of("strix-halo-default-gtt"), amdttm_pages_limit=16469033)
    (suggestion,) = compute_pool(facts, backend="vulkan").suggestions
    assert "amdttm.pages_limit=" in suggestion


def test_large_carve_out_is_added_once() -> None:
    pool = compute_pool(facts_of("strix-halo-carveout-96g"), backend="vulkan")
    gtt = 4058844 * 4096  # 15.5 GiB, below MemTotal - reserve (about 25 GiB)
    assert pool.source == "vram+gtt"
    assert pool.budget_bytes == 96 * GIB + gtt
    assert pool.budget_bytes < 96 * GIB + 108000 * 1024**2  # not VRAM + the 108000M dmesg GTT
    assert any("carve-out" in s for s in pool.suggestions)


def test_cpu_backend_uses_the_ram() -> None:
    pool = compute_pool(facts_of("strix-halo-healthy"), backend="cpu")
    assert pool.source == "ram"
    assert pool.budget_bytes == 131011448 * KIB - 6 * GIB


def test_ram_pool_capped_at_memavailable() -> None:
    facts = facts_of("no-amd-gpu")  # real /proc/meminfo of this project's build machine
    pool = compute_pool(facts, backend="cpu", reserve_bytes=GIB // 2)
    assert pool.budget_bytes == 22789136 * KIB
    assert any("MemAvailable" in r for r in pool.reasons)
    assert compute_pool(facts, backend="cpu").budget_bytes == 24684084 * KIB - 6 * GIB


@pytest.mark.parametrize("backend", ["cpu", "vulkan"])
def test_nothing_known_gives_zero_not_negative(tmp_path: Path, backend: str) -> None:
    facts = read_os_facts(tmp_path, kernel=None, env={})
    assert compute_pool(facts, backend=backend).budget_bytes == 0

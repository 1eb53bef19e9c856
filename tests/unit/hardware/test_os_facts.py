from __future__ import annotations

import os
from pathlib import Path

from app.hardware.os_facts import read_os_facts
from app.hardware.units import GIB
from tests.unit.hardware.helpers import MACHINES


def test_strix_halo_tree() -> None:
    facts = read_os_facts(
        MACHINES / "strix-halo-healthy", kernel="6.17.0-35-generic", env={}, open_check=False
    )
    assert facts.strix_halo
    assert facts.amd_gpu
    assert facts.cpu_model == "AMD RYZEN AI MAX+ 395 w/ Radeon 8060S"
    assert facts.kfd.exists
    assert facts.kfd.accessible
    assert [n.path for n in facts.render_nodes] == ["/dev/dri/renderD128"]
    assert [n.gfx_name for n in facts.gpu_kfd_nodes] == ["gfx1151"]
    card = facts.amdgpu_card
    assert card is not None
    assert (card.name, card.vram_total, card.gtt_total) == ("card0", 512 * 1024**2, 124 * GIB)
    assert facts.ttm_limit_pages == 32505856
    assert facts.vulkan_loader
    assert [i.driver for i in facts.vulkan_icds] == ["llvmpipe", "radv"]
    assert facts.hsa_override_gfx_version is None


def test_recorded_access_overrides_the_open_check() -> None:
    facts = read_os_facts(
        MACHINES / "strix-halo-llvmpipe-only",
        kernel=None,
        env={"HSA_OVERRIDE_GFX_VERSION": "11.0.0"},
        access={"/dev/dri/renderD128": False, "/dev/kfd": False},
        open_check=False,
    )
    assert not facts.kfd.accessible
    assert not facts.render_nodes[0].accessible
    assert facts.hsa_override_gfx_version == "11.0.0"


def test_open_check_opens_the_file(tmp_path: Path) -> None:
    (tmp_path / "dev").mkdir()
    kfd = tmp_path / "dev" / "kfd"
    kfd.write_text("")
    assert read_os_facts(tmp_path, kernel=None, env={}).kfd.accessible
    kfd.chmod(0o000)
    try:
        facts = read_os_facts(tmp_path, kernel=None, env={})
    finally:
        kfd.chmod(0o644)
    assert facts.kfd.exists
    assert facts.kfd.accessible is (os.geteuid() == 0)  # root opens anything


def test_amdttm_wins_over_ttm(tmp_path: Path) -> None:
    for module, pages in (("ttm", "16469033"), ("amdttm", "31457280")):
        param = tmp_path / "sys/module" / module / "parameters"
        param.mkdir(parents=True)
        (param / "pages_limit").write_text(pages + "\n")
    facts = read_os_facts(tmp_path, kernel=None, env={})
    assert facts.ttm_limit_pages == 31457280


def test_empty_root_is_not_an_error(tmp_path: Path) -> None:
    facts = read_os_facts(tmp_path, kernel=None, env={})
    assert not facts.strix_halo
    assert not facts.kfd.exists
    assert facts.render_nodes == ()
    assert facts.amdgpu_card is None
    assert facts.meminfo.total_bytes is None

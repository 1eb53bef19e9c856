"""KV cache types: the backend's default (q8_0 keys on the CPU), a model's own, f16 over nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.catalog.catalog import Catalog, Defaults, scan
from app.config import Settings
from app.factory import cache_types, estimate_entry, worker_spec
from app.hardware.choice import BackendChoice, choose_backend
from app.hardware.llama_build import parse_llama_devices
from app.hardware.os_facts import read_os_facts
from tests.unit.hardware.helpers import MACHINES, command_text

NODE = "127.0.0.1:50052"


def strix_halo(requested: str) -> BackendChoice:
    facts = read_os_facts(
        MACHINES / "strix-halo-healthy", kernel="6.17.0-35-generic", env={}, open_check=False
    )
    build = parse_llama_devices(command_text("strix-halo-healthy", "llama-devices.json"))
    return choose_backend(facts, build, requested=requested)


@pytest.fixture
def catalog(tmp_path: Path, smollm_path: Path) -> Catalog:
    (tmp_path / "smol.gguf").symlink_to(smollm_path)
    toml = tmp_path / "models.toml"
    toml.write_text(
        '[models.plain]\npath = "smol.gguf"\n'
        '[models.f16]\npath = "smol.gguf"\ncache_type_k = "f16"\n'
        '[models.q4]\npath = "smol.gguf"\ncache_type_k = "q4_0"\ncache_type_v = "q8_0"\n'
        f'[models.split]\npath = "smol.gguf"\nnodes = ["{NODE}"]\n'
    )
    found = scan(tmp_path, toml, Defaults(512, 2, 60, (NODE,)))
    assert not found.problems
    return found


def types(choice: BackendChoice, catalog: Catalog, model_id: str) -> tuple[str, str]:
    entry = catalog.get(model_id)
    assert entry is not None
    return cache_types(choice, entry)


@pytest.mark.parametrize(("backend", "expected"), [
    ("cpu", {"plain": ("q8_0", "f16"), "f16": ("f16", "f16"), "q4": ("q4_0", "q8_0"),
             "split": ("f16", "f16")}),
    ("vulkan", {"plain": ("f16", "f16"), "f16": ("f16", "f16"), "q4": ("q4_0", "q8_0"),
                "split": ("f16", "f16")}),
    ("rocm", {"plain": ("f16", "f16"), "f16": ("f16", "f16"), "q4": ("q4_0", "q8_0"),
              "split": ("f16", "f16")}),
])
def test_backend_default_unless_the_model_sets_one(
    catalog: Catalog, backend: str, expected: dict[str, tuple[str, str]]
) -> None:
    choice = strix_halo(backend)
    assert choice.backend == backend
    assert {m: types(choice, catalog, m) for m in expected} == expected


def test_worker_and_estimate_use_the_same_types(catalog: Catalog) -> None:
    cpu, gpu = strix_halo("cpu"), strix_halo("vulkan")
    plain, f16 = catalog.get("plain"), catalog.get("f16")
    assert plain is not None
    assert f16 is not None
    spec = worker_spec(Settings(), cpu, plain)
    assert (spec.cache_type_k, spec.cache_type_v) == ("q8_0", "f16")
    # SmolLM2 keys and values are 64 wide: a q8_0 key row is 68 bytes where f16 takes 128
    assert estimate_entry(cpu, plain).kv * 256 == estimate_entry(cpu, f16).kv * (68 + 128)
    assert estimate_entry(gpu, plain).kv == estimate_entry(cpu, f16).kv

"""models.toml speculative settings and draft models in the catalog."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.catalog.catalog import Defaults, scan
from app.catalog.models_toml import ModelsFileError, SpecConfig, load_models_file

DEFAULTS = Defaults(n_ctx=512, parallel=2, ttl=60)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(text)
    return path


def test_defaults_ngram_auto_or_draft(tmp_path: Path) -> None:
    configs = load_models_file(write(tmp_path, (
        '[models.a]\npath = "a.gguf"\n'
        '[models.b]\npath = "b.gguf"\ndraft = "a"\n'
        '[models.c]\npath = "c.gguf"\nspeculative = {type = "off"}\n'
        '[models.d]\npath = "d.gguf"\ndraft = "a"\nspeculative = {type = "draft"}\n'
        '[models.e]\npath = "e.gguf"\ndraft = "a"\nspeculative = {type = "draft", max = 20}\n'
    )))
    assert configs["a"].spec == SpecConfig(type="ngram", max=64, budget="auto")
    assert configs["b"].spec == SpecConfig(type="draft", max=8)  # a draft model: 8
    assert configs["c"].spec == SpecConfig(type="off", max=64)
    assert configs["d"].spec == SpecConfig(type="draft", max=8)
    assert configs["e"].spec == SpecConfig(type="draft", max=20)


@pytest.mark.parametrize("table", [
    'speculative = {type = "draft"}',  # no draft model named
    'speculative = {type = "medusa"}',
    'speculative = {type = "ngram", max = 0}',
    'speculative = {type = "ngram", k = 3}',
    'draft = ""',
])
def test_bad_settings_are_refused(tmp_path: Path, table: str) -> None:
    with pytest.raises(ModelsFileError, match=r"\[models\.a\]"):
        load_models_file(write(tmp_path, f'[models.a]\npath = "a.gguf"\n{table}\n'))


def test_draft_is_resolved_and_an_unknown_one_is_a_problem(
    tmp_path: Path, smollm_path: Path
) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "smol.gguf").symlink_to(smollm_path)
    toml = write(models, (
        '[models.big]\npath = "smol.gguf"\ndraft = "small"\n'
        'speculative = {type = "draft", max = 5}\n'
        '[models.small]\npath = "smol.gguf"\n'
        '[models.lost]\npath = "smol.gguf"\ndraft = "nowhere"\n'
        'speculative = {type = "draft", max = 3}\n'
    ))
    catalog = scan(models, toml, DEFAULTS)
    big = catalog.get("big")
    assert big is not None
    assert big.draft_path == models / "smol.gguf"
    assert big.draft_file is not None
    assert big.speculative == SpecConfig(type="draft", max=5)
    lost = catalog.get("lost")
    assert lost is not None
    assert lost.draft_id is None
    assert lost.draft_path is None
    assert lost.speculative == SpecConfig(type="ngram", max=3)
    assert any("nowhere" in p.reason for p in catalog.problems)

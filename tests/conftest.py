"""Shared fixtures: the real test models (fetched by `make models`)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

from app.hardware.probe import ProbeReport, probe

# CI runs every property test on hypothesis's fixed seed, so a submission cannot pass or fail
# by the draw; developers' runs stay random (and find new cases). `--hypothesis-seed` overrides.
settings.register_profile("ci", derandomize=True, database=None)
if os.environ.get("CI") == "true":
    settings.load_profile("ci")

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"
SMOLLM = MODELS / "SmolLM2-135M-Instruct.Q4_1.gguf"
GEMMA = MODELS / "gemma-3-270m-q4_k_m.gguf"
MINILM = MODELS / "all-MiniLM-L6-v2-f16.gguf"  # an embedding model (BERT, mean pooling)
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>"
    "{{ 'model' if m['role'] == 'assistant' else 'user' }}\n{{ m['content'] }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _require(path: Path) -> Path:
    if not path.is_file():
        pytest.fail(f"test model {path.name} is missing: run `make models`")
    return path


@pytest.fixture(scope="session")
def smollm_path() -> Path:
    return _require(SMOLLM)


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    return _require(GEMMA)


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    return _require(MINILM)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def models_dir(tmp_path: Path, smollm_path: Path, gemma_path: Path) -> Path:
    """A models dir with both real models (symlinked) and a models.toml for gemma's template."""
    root = tmp_path / "models"
    root.mkdir()
    (root / smollm_path.name).symlink_to(smollm_path)
    (root / gemma_path.name).symlink_to(gemma_path)
    (root / "models.toml").write_text(
        '[models.gemma3-270m]\npath = "gemma-3-270m-q4_k_m.gguf"\nn_ctx = 1024\nparallel = 2\n'
        f"chat_template = '''{GEMMA_TEMPLATE}'''\n"
    )
    return root


@pytest.fixture(scope="session")
def probe_report() -> ProbeReport:
    """A probe of a captured machine with no AMD GPU (deterministic on any host)."""
    return probe(REPO / "tests/fixtures/machines/no-amd-gpu", env={}, run_commands=False,
                 memory_budget=16 << 30)

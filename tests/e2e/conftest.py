from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import GEMMA, GEMMA_TEMPLATE, SMOLLM, _require
from tests.e2e.server import Server, halo_server


def make_models_dir(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for model in (SMOLLM, GEMMA):
        (root / model.name).symlink_to(_require(model))
    (root / "models.toml").write_text(
        '[models.smollm2]\npath = "SmolLM2-135M-Instruct.Q4_1.gguf"\nn_ctx = 2048\nparallel = 8\n'
        '[models.gemma3-270m]\npath = "gemma-3-270m-q4_k_m.gguf"\nn_ctx = 1024\nparallel = 2\n'
        f"chat_template = '''{GEMMA_TEMPLATE}'''\n"
    )
    return root


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("e2e")
    with halo_server(make_models_dir(tmp / "models"), tmp) as srv:
        yield srv

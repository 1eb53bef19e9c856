"""Scheduler test fixtures: the realistic model headers of tests/model_headers.py, read once."""

from __future__ import annotations

import pytest

from app.catalog.shards import ModelFile, read_model
from tests.model_headers import BUILDERS, write_model


@pytest.fixture(scope="session")
def header_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ModelFile]:
    """name -> ModelFile of each realistic header (sparse files, no weights)."""
    root = tmp_path_factory.mktemp("headers")
    return {name: read_model(write_model(root, name)) for name in BUILDERS}

"""Issue 2 acceptance: a real `halo serve` lists the real models to the real openai SDK."""

from __future__ import annotations

from pathlib import Path

import httpx
import openai
import pytest

from tests.conftest import GEMMA, SMOLLM, _require
from tests.e2e.server import Server, halo_server


def test_models_list_with_openai_sdk(server: Server) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused")
    models = {m.id: m for m in client.models.list()}
    assert set(models) == {"smollm2", "gemma3-270m"}
    smol = models["smollm2"].model_dump()
    assert smol["context_length"] == 8192
    assert smol["size_bytes"] == SMOLLM.stat().st_size
    gemma = models["gemma3-270m"].model_dump()
    assert gemma["context_length"] == 32768
    assert gemma["size_bytes"] == GEMMA.stat().st_size
    assert client.models.retrieve("gemma3-270m").id == "gemma3-270m"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_plain_models_dir_uses_file_stems(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    for model in (SMOLLM, GEMMA):
        (root / model.name).symlink_to(_require(model))
    (root / "junk.gguf").write_bytes(b"GGUF" + b"\x00" * 100)
    with halo_server(root, tmp_path) as srv:
        data = httpx.get(srv.base_url + "/models").json()["data"]
        assert {m["id"] for m in data} == {SMOLLM.stem, GEMMA.stem}
        assert "invalid model file skipped" in srv.log()


def test_api_key_required_when_configured(tmp_path: Path) -> None:
    root = tmp_path / "models"
    root.mkdir()
    (root / SMOLLM.name).symlink_to(_require(SMOLLM))
    with halo_server(root, tmp_path, env={"HALO_API_KEYS": "s3cret"}) as srv:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=srv.base_url, api_key="wrong").models.list()
        ok = openai.OpenAI(base_url=srv.base_url, api_key="s3cret").models.list()
        assert [m.id for m in ok] == [SMOLLM.stem]

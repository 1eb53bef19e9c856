from __future__ import annotations

from pathlib import Path

from app.catalog.catalog import default_id, model_files


def test_split_models_are_listed_once_under_their_prefix(tmp_path: Path) -> None:
    for name in ("big-00001-of-00002.gguf", "big-00002-of-00002.gguf", "small.gguf"):
        (tmp_path / name).write_bytes(b"")
    files = model_files(tmp_path)
    assert [p.name for p in files] == ["big-00001-of-00002.gguf", "small.gguf"]
    assert [default_id(p) for p in files] == ["big", "small"]

"""`halo rm`: a model's files in the models dir (no hub involved)."""

from __future__ import annotations

from pathlib import Path

from app.catalog.catalog import ModelEntry
from app.catalog.gguf import GGUFError
from app.catalog.shards import split_paths
from app.catalog.sources import read_source, remove_source


def remove_files(models_dir: Path, entry: ModelEntry) -> list[str]:
    """Delete a model's shards, its projector and its pull record; returns the names."""
    try:
        paths = split_paths(entry.path)
    except GGUFError:
        paths = [entry.path]
    record = read_source(models_dir, entry.id)
    if entry.mmproj is not None:
        paths.append(entry.mmproj)
    elif record is not None and record.mmproj:
        paths.append(models_dir / record.mmproj)
    for path in paths:  # the first shard first: the model leaves the catalog at once
        path.unlink(missing_ok=True)
    remove_source(models_dir, entry.id)
    return [p.name for p in paths]

"""Where pulled models came from: `<models_dir>/.halo/sources/<model id>.json`.

Written by app/hub when a pull completes (before the model's first file appears), read by the
catalog (`ModelEntry.source`, `.mmproj`) and by `halo ls` / `halo rm`. Files copied in by hand
have no record. The hidden `.halo/` directory also holds partial downloads and pull locks, so it
is on the models' filesystem (atomic renames) and never scanned for models.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_DIR = ".halo"


@dataclass(frozen=True)
class PulledFile:
    remote: str  # path inside the repo
    sha256: str | None
    size: int


@dataclass(frozen=True)
class Source:
    model: str
    source: str  # "repo:QUANT" as `halo pull` takes it
    repo: str
    revision: str
    commit: str | None
    files: dict[str, PulledFile] = field(default_factory=dict)  # local name -> what it is
    mmproj: str | None = None  # local name of the vision projector


def state_dir(models_dir: Path) -> Path:
    return models_dir / STATE_DIR


def source_path(models_dir: Path, model_id: str) -> Path:
    return state_dir(models_dir) / "sources" / f"{model_id}.json"


def read_source(models_dir: Path, model_id: str) -> Source | None:
    """The record of a pulled model, None if there is none (or it is unreadable)."""
    try:
        data = json.loads(source_path(models_dir, model_id).read_text(encoding="utf-8"))
        files = {k: PulledFile(**v) for k, v in data.pop("files", {}).items()}
        return Source(**data, files=files)
    except (OSError, ValueError, TypeError):
        return None


def write_source(models_dir: Path, record: Source) -> None:
    path = source_path(models_dir, record.model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(record), indent=2), encoding="utf-8")
    os.replace(tmp, path)


def remove_source(models_dir: Path, model_id: str) -> None:
    source_path(models_dir, model_id).unlink(missing_ok=True)


def is_mmproj(name: str) -> bool:
    """Vision projector files are fetched with a model but are not models themselves."""
    return "mmproj" in name.lower()

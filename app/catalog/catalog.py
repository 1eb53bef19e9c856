"""The model catalog: every GGUF in the models dir, named by models.toml or its file stem."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from app.catalog.gguf import GGUFError, ModelFile, read_model, split_name
from app.catalog.models_toml import CacheType, ModelConfig, load_models_file

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class ModelEntry:
    """A servable model: its file, its header and the settings it is served with."""

    id: str
    path: Path
    file: ModelFile
    n_ctx: int
    parallel: int
    n_batch: int
    pinned: bool
    ttl: float
    chat_template: str | None
    cache_type_k: CacheType
    cache_type_v: CacheType

    @property
    def size_bytes(self) -> int:
        return self.file.file_bytes

    @property
    def context_length(self) -> int | None:
        """The context the model was trained for (GGUF header)."""
        return self.file.info.context_length

    @property
    def has_chat_template(self) -> bool:
        return self.chat_template is not None or self.file.info.chat_template is not None


@dataclass(frozen=True)
class Defaults:
    n_ctx: int
    parallel: int
    ttl: float


@dataclass(frozen=True)
class Problem:
    path: Path
    reason: str


@dataclass(frozen=True)
class Catalog:
    entries: dict[str, ModelEntry]
    problems: tuple[Problem, ...]

    def get(self, model_id: str) -> ModelEntry | None:
        return self.entries.get(model_id)

    def __iter__(self) -> Iterator[ModelEntry]:
        return iter(sorted(self.entries.values(), key=lambda e: e.id))

    def __len__(self) -> int:
        return len(self.entries)


def model_files(models_dir: Path) -> list[Path]:
    """GGUF files that start a model: single files and first shards of split models."""
    if not models_dir.is_dir():
        return []
    out = []
    for path in sorted(models_dir.glob("*.gguf")):
        split = split_name(path.name)
        if split is None or split[1] == 1:
            out.append(path)
    return out


def default_id(path: Path) -> str:
    split = split_name(path.name)
    return split[0] if split else path.stem


def scan(models_dir: Path, models_file: Path, defaults: Defaults) -> Catalog:
    """Build the catalog. Invalid GGUF files are reported and skipped, never fatal."""
    configs = load_models_file(models_file)
    entries: dict[str, ModelEntry] = {}
    problems: list[Problem] = []
    claimed: set[Path] = set()

    def add(model_id: str, path: Path, config: ModelConfig) -> None:
        try:
            file = read_model(path)
        except (GGUFError, OSError) as exc:
            problems.append(Problem(path, str(exc)))
            log.warning("skipping model file", extra={"path": str(path), "reason": str(exc)})
            return
        n_ctx = config.n_ctx or defaults.n_ctx
        trained = file.info.context_length
        if config.n_ctx is None and trained is not None:
            n_ctx = min(n_ctx, trained)
        entries[model_id] = ModelEntry(
            id=model_id,
            path=path,
            file=file,
            n_ctx=n_ctx,
            parallel=config.parallel or defaults.parallel,
            n_batch=config.n_batch,
            pinned=config.pinned,
            ttl=defaults.ttl if config.ttl is None else config.ttl,
            chat_template=config.chat_template,
            cache_type_k=config.cache_type_k,
            cache_type_v=config.cache_type_v,
        )

    for model_id, config in configs.items():
        path = config.path if config.path.is_absolute() else models_dir / config.path
        claimed.add(path.resolve())
        add(model_id, path, config)
    for path in model_files(models_dir):
        model_id = default_id(path)
        if path.resolve() in claimed or model_id in entries:
            continue
        add(model_id, path, ModelConfig(path=path))
    return Catalog(entries=entries, problems=tuple(problems))

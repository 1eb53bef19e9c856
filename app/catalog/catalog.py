"""The model catalog: every GGUF in the models dir, named by models.toml or its file stem."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from app.catalog.gguf import GGUFError
from app.catalog.models_toml import CacheType, ModelConfig, SpecConfig, load_models_file
from app.catalog.shards import ModelFile, read_model, split_name
from app.catalog.sources import is_mmproj, read_source

log = logging.getLogger(__name__)

# llama_pooling_type values as GGUF stores them
_POOLING_NAMES = {1: "mean", 2: "cls", 3: "last", 4: "rank"}


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
    cache_type_k: CacheType | None  # None: the backend's default (factory.cache_types)
    cache_type_v: CacheType | None
    source: str | None = None  # "repo:QUANT" for a pulled model
    mmproj: Path | None = None  # its vision projector, when one was pulled with it
    nodes: tuple[str, ...] = ()  # RPC nodes holding part of the model (resolved addresses)
    tensor_split: tuple[float, ...] | None = None  # this box first, then each node
    max_tokens: int | None = None  # cap of generated tokens per request (None: the context)
    stop: tuple[str, ...] = ()  # stop strings added to every request
    embedding: bool = False  # served in embedding mode (pooled vectors, no generation)
    pooling: str | None = None  # embedding mode: mean | cls | last | rank
    speculative: SpecConfig = SpecConfig()
    draft_id: str | None = None  # draft model for speculative decoding (a catalog id)
    draft_path: Path | None = None
    draft_file: ModelFile | None = None

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
    nodes: tuple[str, ...] = ()  # halo.toml `nodes`: what `nodes = "all"` means


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
    """GGUF files that start a model: single files and first shards of split models
    (vision projectors, `*mmproj*`, belong to a model and are not listed)."""
    if not models_dir.is_dir():
        return []
    out = []
    for path in sorted(models_dir.glob("*.gguf")):
        if is_mmproj(path.name):
            continue
        split = split_name(path.name)
        if split is None or split[1] == 1:
            out.append(path)
    return out


def embedding_mode(file: ModelFile, config: ModelConfig) -> tuple[bool, str | None]:
    """(served in embedding mode, pooling): models.toml decides, else the GGUF header.

    A GGUF that declares a pooling type or non-causal attention (BERT-style encoders) is an
    embedding model; a generative model set to `embedding = true` pools by mean unless told.
    """
    arch = file.info.architecture
    own = _POOLING_NAMES.get(file.info.pooling_type or 0)
    causal = file.info.metadata.get(f"{arch}.attention.causal")
    embedding = config.embedding if config.embedding is not None else (
        own is not None or causal is False)
    if not embedding:
        return False, None
    return True, config.pooling or own or "mean"


def default_id(path: Path) -> str:
    split = split_name(path.name)
    return split[0] if split else path.stem


def make_entry(model_id: str, path: Path, file: ModelFile, config: ModelConfig,
               defaults: Defaults, models_dir: Path) -> ModelEntry:
    """The served settings of one model file: models.toml over the server defaults, the context
    capped at the trained one unless models.toml sets it."""
    n_ctx = config.n_ctx or defaults.n_ctx
    trained = file.info.context_length
    if config.n_ctx is None and trained is not None:
        n_ctx = min(n_ctx, trained)
    record = read_source(models_dir, model_id)
    mmproj = models_dir / record.mmproj if record and record.mmproj else None
    embedding, pooling = embedding_mode(file, config)
    return ModelEntry(
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
        source=record.source if record else config.source,
        mmproj=mmproj if mmproj and mmproj.is_file() else None,
        nodes=defaults.nodes if config.nodes == "all" else tuple(config.nodes),
        tensor_split=tuple(config.tensor_split) if config.tensor_split else None,
        max_tokens=config.max_tokens,
        stop=tuple(s for s in config.stop if s),
        embedding=embedding,
        pooling=pooling,
        speculative=SpecConfig(type="off", max=config.spec.max) if embedding else config.spec,
        draft_id=None if embedding else config.draft,
    )


def cluster_problem(model_id: str, config: ModelConfig, defaults: Defaults) -> str | None:
    """Why a model's `nodes` / `tensor_split` cannot be served with halo.toml's nodes."""
    nodes = defaults.nodes if config.nodes == "all" else tuple(config.nodes)
    unknown = [n for n in nodes if n not in defaults.nodes]
    if unknown:
        return f"[models.{model_id}] nodes {unknown} are not in halo.toml's nodes"
    if config.tensor_split is not None and len(config.tensor_split) != len(nodes) + 1:
        return (f"[models.{model_id}] tensor_split needs {len(nodes) + 1} shares (this box "
                f"first, then each node), got {len(config.tensor_split)}")
    return None


def scan(models_dir: Path, models_file: Path, defaults: Defaults,
         read: Callable[[Path], ModelFile] = read_model) -> Catalog:
    """Build the catalog. Invalid GGUF files are reported and skipped, never fatal; so are files
    shorter than their header says (a copy or download still in progress)."""
    configs = load_models_file(models_file)
    entries: dict[str, ModelEntry] = {}
    problems: list[Problem] = []
    claimed: set[Path] = set()

    def add(model_id: str, path: Path, config: ModelConfig) -> None:
        reason = cluster_problem(model_id, config, defaults)
        if reason is not None:
            problems.append(Problem(path, reason))
            log.warning("skipping model", extra={"path": str(path), "reason": reason})
            return
        try:
            file = read(path)
        except (GGUFError, OSError) as exc:
            problems.append(Problem(path, str(exc)))
            log.warning("skipping model file", extra={"path": str(path), "reason": str(exc)})
            return
        short = [s.path.name for s in file.shards if s.truncated]
        if short:
            reason = f"incomplete (shorter than its header says): {', '.join(short)}"
            problems.append(Problem(path, reason))
            return
        entries[model_id] = make_entry(model_id, path, file, config, defaults, models_dir)

    for model_id, config in configs.items():
        path = config.path if config.path.is_absolute() else models_dir / config.path
        claimed.add(path.resolve())
        add(model_id, path, config)
    for path in model_files(models_dir):
        model_id = default_id(path)
        if path.resolve() in claimed or model_id in entries:
            continue
        add(model_id, path, ModelConfig(path=path))
    for model_id, entry in list(entries.items()):
        if entry.draft_id is not None:
            entries[model_id] = _with_draft(entry, entries.get(entry.draft_id), problems)
    return Catalog(entries=entries, problems=tuple(problems))


def _with_draft(entry: ModelEntry, draft: ModelEntry | None, problems: list[Problem]) -> ModelEntry:
    """Resolve the entry's draft model; an unknown one is a problem and speculation falls
    back to n-gram lookup (the vocabulary is checked when the worker loads both)."""
    if draft is None:
        problems.append(Problem(entry.path, f"draft model '{entry.draft_id}' of '{entry.id}' "
                                            "is not in the catalog"))
        log.warning("unknown draft model", extra={"model": entry.id, "draft": entry.draft_id})
        spec = entry.speculative
        if spec.type == "draft":
            spec = SpecConfig(type="ngram", max=spec.max)
        return replace(entry, draft_id=None, speculative=spec)
    return replace(entry, draft_path=draft.path, draft_file=draft.file)

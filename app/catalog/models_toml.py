"""Per-model settings from models.toml.

    [models.smollm2]                 # the id clients send as "model"
    path = "SmolLM2-135M-Instruct.Q4_1.gguf"   # relative to the models dir
    n_ctx = 4096                     # context per request slot
    parallel = 4                     # concurrent sequences
    pinned = false                   # never evicted
    ttl = 300                        # idle seconds before unload (0 = never)
    chat_template = "..."            # or chat_template_file = "gemma.jinja"
    source = "org/repo:Q4_K_M"       # where `halo pull --all` gets it (Hugging Face repo:quant)
    nodes = ["box2:50052"]           # or "all": split across this box and halo.toml's nodes
    tensor_split = [2, 1]            # shares: this box first, then each node (default: memory)
    max_tokens = 2048                # cap per request (a client may ask for less, not more)
    stop = ["<end_of_turn>"]         # stop strings added to every request (like Ollama's)
    embedding = true                 # serve in embedding mode (default: GGUF says pooling)
    pooling = "mean"                 # mean | cls | last | rank (default: the model's own)
    speculative = {type = "ngram", max = 64, budget = "auto"}  # type ngram (default) | draft
    #   (default with `draft`) | off; max draft tokens (default 64); budget auto (when a
    #   wider step pays) | always
    draft = "smollm2-draft"          # id of a draft model (same vocabulary) for type "draft"
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Pooling = Literal["mean", "cls", "last", "rank"]
CacheType = Literal["f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1"]


SpecType = Literal["ngram", "draft", "off"]
SpecBudget = Literal["auto", "always"]
SPEC_MAX = 64
DRAFT_MAX = 8  # the default `max` of a draft model's speculation


class SpecConfig(BaseModel):
    """Speculative decoding of a model (the default of its requests)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    type: SpecType = "ngram"
    # up to 64: on a CPU a 64-token step of one sequence is llama.cpp's cheapest per token
    max: int = Field(64, ge=1, le=SPEC_MAX)
    # "auto": draft only where the measured step cost says it pays; "always": whenever there
    # is a proposal
    budget: SpecBudget = "auto"


class ModelConfig(BaseModel):
    """One [models.<id>] table. Unset fields fall back to the server defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    n_ctx: int | None = Field(None, ge=64)
    parallel: int | None = Field(None, ge=1, le=64)
    n_batch: int = Field(512, ge=32)
    pinned: bool = False
    ttl: float | None = Field(None, ge=0)
    chat_template: str | None = None
    chat_template_file: Path | None = None
    cache_type_k: CacheType | None = None  # None: the backend's (app/hardware/choice.py)
    cache_type_v: CacheType | None = None
    max_tokens: int | None = Field(None, ge=1)  # cap of tokens generated per request
    stop: list[str] = Field(default_factory=list, max_length=8)  # added to every request's
    source: str | None = None
    embedding: bool | None = None
    pooling: Pooling | None = None
    nodes: list[str] | Literal["all"] = Field(default_factory=list)
    tensor_split: list[float] | None = None

    @model_validator(mode="after")
    def _split_matches_nodes(self) -> ModelConfig:
        if self.tensor_split is None:
            return self
        if any(x < 0 for x in self.tensor_split) or sum(self.tensor_split) <= 0:
            raise ValueError("tensor_split shares must be >= 0 with a positive sum")
        if isinstance(self.nodes, list) and len(self.tensor_split) != len(self.nodes) + 1:
            raise ValueError(f"tensor_split needs {len(self.nodes) + 1} shares (this box "
                             f"first, then each node), got {len(self.tensor_split)}")
        return self
    speculative: SpecConfig | None = None  # None: ngram, or draft when `draft` is set
    draft: str | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_template_source(self) -> ModelConfig:
        if self.chat_template is not None and self.chat_template_file is not None:
            raise ValueError("set chat_template or chat_template_file, not both")
        if self.speculative is not None and self.speculative.type == "draft" and not self.draft:
            raise ValueError('speculative type "draft" needs a draft model (draft = "id")')
        return self

    @property
    def spec(self) -> SpecConfig:
        spec = self.speculative
        if spec is None:
            # n-gram lookup by default (max 64, budget auto: it drafts only where the measured
            # step cost says it pays, docs/benchmarks.md); a draft model when one is named
            spec = SpecConfig(type="draft" if self.draft else "ngram")
        if spec.type == "draft" and "max" not in spec.model_fields_set:
            # each draft token costs the draft model a decode of its own, which the step
            # cost does not see: a draft model drafts at most 8 unless told otherwise
            spec = spec.model_copy(update={"max": DRAFT_MAX})
        return spec


class ModelsFileError(Exception):
    """models.toml cannot be used; the message names the file and the problem."""


def load_models_file(path: Path) -> dict[str, ModelConfig]:
    """Parse models.toml; a missing file means no per-model settings."""
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ModelsFileError(f"{path}: {exc}") from exc
    unknown = set(data) - {"models"}
    if unknown:
        raise ModelsFileError(f"{path}: unknown top-level keys {sorted(unknown)}")
    tables = data.get("models", {})
    if not isinstance(tables, dict):
        raise ModelsFileError(f"{path}: [models] must be a table of tables")
    out: dict[str, ModelConfig] = {}
    for model_id, table in tables.items():
        try:
            config = ModelConfig.model_validate(table)
        except ValidationError as exc:
            raise ModelsFileError(f"{path}: [models.{model_id}]: {exc}") from exc
        if config.chat_template_file is not None:
            template_path = _resolve(path.parent, config.chat_template_file)
            try:
                text = template_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ModelsFileError(f"{path}: [models.{model_id}]: {exc}") from exc
            config = config.model_copy(update={"chat_template": text, "chat_template_file": None})
        out[model_id] = config
    return out


def _resolve(base: Path, path: Path) -> Path:
    return path if path.is_absolute() else base / path

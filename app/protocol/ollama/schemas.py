"""Ollama API request schemas (`/api/*`), permissive: unknown fields are accepted, ignored.

Field names and defaults follow Ollama's API documentation: `stream` defaults to true,
`options` carries the sampling parameters, `keep_alive` is a duration ("5m", "1h", "0")
or a number of seconds (negative: keep loaded).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

_DURATION_RE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)?\s*$")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART_RE = re.compile(r"(-?\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def keep_alive_seconds(value: str | float | None) -> float | None:
    """Seconds to keep the model loaded after the request; None = the model's own TTL.

    Negative means "forever" (returned as -1.0); 0 unloads right after the request.
    Accepts Go durations ("5m", "1h30m", "300ms") and plain numbers (seconds).
    """
    if value is None:
        return None
    if isinstance(value, int | float):
        return -1.0 if value < 0 else float(value)
    match = _DURATION_RE.match(value)
    if match is not None:
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        parts = _DURATION_PART_RE.findall(value.strip())
        if not parts or "".join(n + u for n, u in parts) != value.strip():
            raise ValueError(f"keep_alive {value!r} is not a duration like '5m' or a number")
        seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    return -1.0 if seconds < 0 else seconds


class Options(BaseModel):
    """Ollama's `options`; the ones that map to sampling are used, the rest ignored."""

    model_config = ConfigDict(extra="allow")

    temperature: float | None = Field(None, ge=0.0, le=2.0)
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=0)
    min_p: float | None = Field(None, ge=0.0, le=1.0)
    seed: int | None = None
    num_predict: int | None = None  # -1: no limit, -2: fill the context
    stop: list[str] | None = None
    repeat_penalty: float | None = Field(None, gt=0.0, le=10.0)
    presence_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(None, ge=-2.0, le=2.0)
    num_ctx: int | None = None  # the context is the model's setting (models.toml)

    @property
    def max_tokens(self) -> int | None:
        if self.num_predict is None or self.num_predict < 0:
            return None
        return max(1, self.num_predict)


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=256)
    options: Options | None = None
    keep_alive: str | float | None = None

    @field_validator("keep_alive")
    @classmethod
    def _duration(cls, value: str | float | None) -> str | float | None:
        keep_alive_seconds(value)  # raises ValueError for a bad duration
        return value

    @property
    def keep_alive_s(self) -> float | None:
        return keep_alive_seconds(self.keep_alive)


class ToolCallFunction(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: str
    arguments: dict[str, Any] | str = Field(default_factory=dict)


class ToolCall(BaseModel):
    model_config = ConfigDict(extra="allow")

    function: ToolCallFunction


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: str = Field(pattern=r"^(system|user|assistant|tool)$")
    content: str = ""
    thinking: str | None = None
    images: list[str] | None = None
    tool_calls: list[ToolCall] | None = None
    tool_name: str | None = None


class ChatRequest(_Request):
    messages: list[Message] = Field(default_factory=list, max_length=4096)
    tools: list[dict[str, Any]] | None = None
    format: str | dict[str, Any] | None = None  # "json" or a JSON schema
    stream: bool = True
    think: bool | str | None = None


class GenerateRequest(_Request):
    prompt: str = ""
    suffix: str | None = None
    system: str | None = None
    template: str | None = None
    raw: bool = False
    format: str | dict[str, Any] | None = None
    stream: bool = True
    think: bool | str | None = None
    images: list[str] | None = None


class EmbedRequest(_Request):
    input: str | list[str] = Field(default_factory=list)
    truncate: bool = True
    dimensions: int | None = Field(None, ge=1)

    @property
    def inputs(self) -> list[str | list[int]]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


class LegacyEmbeddingsRequest(_Request):
    """`/api/embeddings` (deprecated by Ollama, still used): one prompt."""

    prompt: str


class ModelRequest(BaseModel):
    """`/api/show`, `/api/delete`: the model by `model` (or the older `name`)."""

    model_config = ConfigDict(extra="allow")

    model: str | None = Field(None, min_length=1, max_length=256)
    name: str | None = Field(None, min_length=1, max_length=256)
    verbose: bool = False

    @property
    def model_id(self) -> str:
        return self.model or self.name or ""


class PullRequest(ModelRequest):
    """`/api/pull`: `model` (or `name`) is `hf.co/org/repo:QUANT` or `org/repo:QUANT`."""

    stream: bool = True
    insecure: bool = False

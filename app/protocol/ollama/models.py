"""Ollama's model descriptions (`/api/tags`, `/api/ps`, `/api/show`) from the catalog (pure).

`digest` is a stable identity of the file (path, size, mtime), not the sha256 of its bytes:
hashing a many-GB model on every listing would be far too slow.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from app.catalog.catalog import ModelEntry
from app.catalog.gguf import ArrayInfo

# llama_ftype (general.file_type) -> the quantization name Ollama shows
FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1", 10: "Q2_K",
    11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M", 16: "Q5_K_S",
    17: "Q5_K_M", 18: "Q6_K", 19: "IQ2_XXS", 20: "IQ2_XS", 21: "Q2_K_S", 22: "IQ3_XS",
    23: "IQ3_XXS", 24: "IQ1_S", 25: "IQ4_NL", 26: "IQ3_S", 27: "IQ3_M", 28: "IQ2_S",
    29: "IQ2_M", 30: "IQ4_XS", 31: "IQ1_M", 32: "BF16", 36: "TQ1_0", 37: "TQ2_0",
    38: "MXFP4",
}
LATEST = ":latest"


def resolve_name(name: str, known: set[str]) -> str:
    """Ollama names carry a tag (`model:latest`); halo ids do not."""
    if name not in known and name.endswith(LATEST) and name[:-len(LATEST)] in known:
        return name[:-len(LATEST)]
    return name


def _iso(timestamp: float) -> str:
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat().replace("+00:00", "Z")


def parameter_size(entry: ModelEntry) -> str:
    count = sum(t.n_elements for t in entry.file.tensors)
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if count >= scale:
            value = count / scale
            return f"{value:.1f}{unit}" if value < 10 else f"{value:.0f}{unit}"
    return str(count)


def details(entry: ModelEntry) -> dict[str, Any]:
    info = entry.file.info
    arch = info.architecture or ""
    return {"parent_model": "", "format": "gguf", "family": arch, "families": [arch],
            "parameter_size": parameter_size(entry),
            "quantization_level": FILE_TYPES.get(info.file_type or -1, "unknown")}


def digest(entry: ModelEntry) -> str:
    try:
        stat = entry.path.stat()
        key = f"{entry.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    except OSError:
        key = str(entry.path)
    return hashlib.sha256(key.encode()).hexdigest()


def modified_at(entry: ModelEntry) -> str:
    try:
        return _iso(entry.path.stat().st_mtime)
    except OSError:
        return _iso(0)


def tag(entry: ModelEntry) -> dict[str, Any]:
    """One entry of `/api/tags`."""
    return {"name": entry.id, "model": entry.id, "modified_at": modified_at(entry),
            "size": entry.size_bytes, "digest": digest(entry), "details": details(entry)}


def running(entry: ModelEntry, size: int, expires_at: float | None) -> dict[str, Any]:
    """One entry of `/api/ps` (everything counts as VRAM on a unified-memory APU)."""
    far = dt.datetime(2318, 1, 1, tzinfo=dt.UTC).timestamp()  # Ollama's "forever"
    return {**tag(entry), "size": size, "size_vram": size,
            "expires_at": _iso(far if expires_at is None else expires_at),
            "context_length": entry.n_ctx}


def capabilities(entry: ModelEntry) -> list[str]:
    if entry.embedding:
        return ["embedding"]
    caps = ["completion"]
    template = entry.chat_template or entry.file.info.chat_template or ""
    if "tools" in template:
        caps.append("tools")
    if "<think>" in template or "thinking" in template:
        caps.append("thinking")
    return caps


def show(entry: ModelEntry) -> dict[str, Any]:
    """`/api/show`: details, the template, scalar GGUF metadata as `model_info`."""
    info = entry.file.info
    model_info: dict[str, Any] = {}
    for key, value in info.metadata.items():
        if key == "tokenizer.chat_template" or isinstance(value, ArrayInfo):
            continue
        if isinstance(value, str | int | float | bool):
            model_info[key] = value
    params = [f"num_ctx {entry.n_ctx}"]
    return {
        "modelfile": f"FROM {entry.path}\n",
        "parameters": "\n".join(params),
        "template": entry.chat_template or info.chat_template or "",
        "details": details(entry),
        "model_info": model_info,
        "capabilities": capabilities(entry),
        "modified_at": modified_at(entry),
    }

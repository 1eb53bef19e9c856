""""Will it fit?" before any weight is downloaded.

The GGUF header and tensor table sit at the front of the file: they are read with HTTP range
requests by the same parser the catalog uses (app/catalog/gguf.py), the model gets the settings
it would be served with (models.toml, server defaults) and the scheduler's own estimate, and the
need is compared with the budget and with what the loaded models hold now.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

from app.catalog.catalog import Defaults, ModelEntry, make_entry
from app.catalog.gguf import GGUFError, parse_gguf
from app.catalog.models_toml import ModelConfig, load_models_file
from app.catalog.shards import ModelFile, combine_shards
from app.errors import HubError
from app.hub.refs import Selection
from app.hub.remote import HubClient, Resolved
from app.scheduler.estimate import MemoryEstimate

GIB = 1 << 30
Verdict = Literal["fits", "fits_alone", "never"]


class RangeFile:
    """A read-only, seekable view of a remote file that fetches blocks with range requests."""

    def __init__(self, fetch: Callable[[int, int], bytes], size: int, block: int = 1 << 20):
        self._fetch, self.size, self._block = fetch, size, block
        self._pos = 0
        self._start, self._data = 0, b""
        self.fetched = 0  # bytes transferred
        self.requests = 0

    def seek(self, pos: int, whence: int = 0) -> int:
        self._pos = pos if whence == 0 else (self._pos + pos if whence == 1 else self.size + pos)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = self.size - self._pos
        stop = min(self.size, self._pos + n)
        if not (self._start <= self._pos and stop <= self._start + len(self._data)):
            end = min(self.size, self._pos + max(n, self._block))
            self._data = self._fetch(self._pos, end) if end > self._pos else b""
            self._start = self._pos
            self.fetched += len(self._data)
            self.requests += 1
        out = self._data[self._pos - self._start : stop - self._start]
        self._pos += len(out)
        return out


@dataclass(frozen=True)
class FitReport:
    model: str
    source: str
    n_ctx: int
    parallel: int
    estimate: MemoryEstimate
    budget: int
    loaded: int  # bytes the other loaded models hold now
    file_bytes: int  # the download
    header_bytes: int  # what this check transferred

    @property
    def verdict(self) -> Verdict:
        need = self.estimate.total
        if need > self.budget:
            return "never"
        return "fits" if need + self.loaded <= self.budget else "fits_alone"

    def describe(self) -> str:
        need = self.estimate.total
        says = {
            "fits": "fits next to the models loaded now" if self.loaded else "fits",
            "fits_alone": "fits alone (the models loaded now would be unloaded first)",
            "never": "never fits in this budget",
        }[self.verdict]
        return (f"{self.source}: needs {need / GIB:.1f} GiB at n_ctx {self.n_ctx} x "
                f"{self.parallel} ({self.estimate.describe()}), budget {self.budget / GIB:.1f} "
                f"GiB, loaded now {self.loaded / GIB:.1f} GiB: {says}")

    def to_dict(self) -> dict[str, Any]:
        e = self.estimate
        return {
            "model": self.model, "source": self.source, "verdict": self.verdict,
            "fits": self.verdict != "never", "need_bytes": e.total, "budget_bytes": self.budget,
            "loaded_bytes": self.loaded, "n_ctx": self.n_ctx, "parallel": self.parallel,
            "download_bytes": self.file_bytes, "header_bytes_read": self.header_bytes,
            "estimate": {"weights": e.weights, "kv": e.kv, "recurrent": e.recurrent,
                         "compute": e.compute, "overhead": e.overhead},
            "message": self.describe(),
        }


def remote_model(hub: HubClient, selection: Selection) -> tuple[ModelFile, int]:
    """The headers of every shard, read over HTTP; returns the model and the bytes read."""
    shards = []
    fetched = 0
    for remote in selection.variant.files:
        resolved = hub.resolve(selection.repo, remote.name, selection.revision)
        view = RangeFile(_reader(hub, resolved), resolved.size)
        try:
            shards.append(parse_gguf(cast(BinaryIO, view), resolved.size, Path(remote.basename)))
        except GGUFError as exc:
            raise HubError(f"{selection.repo}/{remote.name} is not a usable GGUF: {exc}") from exc
        fetched += view.fetched
    try:
        return combine_shards(tuple(shards)), fetched
    except GGUFError as exc:
        raise HubError(f"{selection.source}: {exc}") from exc


def _reader(hub: HubClient, resolved: Resolved) -> Callable[[int, int], bytes]:
    return lambda start, stop: hub.read_range(resolved, start, stop)


def remote_entry(file: ModelFile, selection: Selection, models_dir: Path, models_file: Path,
                 defaults: Defaults) -> ModelEntry:
    """The catalog entry the model will have once pulled (models.toml settings included)."""
    name = selection.variant.files[0].basename
    model_id, config = selection.model_id, ModelConfig(path=Path(name))
    for key, candidate in load_models_file(models_file).items():
        if candidate.path.name == name:
            model_id, config = key, candidate
    return make_entry(model_id, models_dir / name, file, config, defaults, models_dir)


def check_fit(hub: HubClient, selection: Selection, *, models_dir: Path, models_file: Path,
              defaults: Defaults, estimate_for: Callable[[ModelEntry], MemoryEstimate],
              budget: int, loaded: Mapping[str, int]) -> FitReport:
    """`loaded`: model id -> bytes reserved now (the model itself is not counted)."""
    file, fetched = remote_model(hub, selection)
    entry = remote_entry(file, selection, models_dir, models_file, defaults)
    others = sum(b for model_id, b in loaded.items() if model_id != entry.id)
    return FitReport(entry.id, selection.source, entry.n_ctx, entry.parallel,
                     estimate_for(entry), budget, others, selection.size, fetched)

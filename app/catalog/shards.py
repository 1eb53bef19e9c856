"""A whole model on disk: one GGUF file, or the shards of a split one ("name-0000i-of-0000N.gguf"),
read and checked to belong together."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from app.catalog.gguf import GGUFError, GGUFInfo, TensorInfo, read_gguf

_SPLIT_RE = re.compile(r"^(?P<prefix>.+)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


def split_name(name: str) -> tuple[str, int, int] | None:
    """(prefix, shard number, shard count) of "prefix-0000i-of-0000N.gguf", else None."""
    m = _SPLIT_RE.match(name)
    return None if m is None else (m["prefix"], int(m["no"]), int(m["count"]))


def split_paths(path: Path) -> list[Path]:
    """All shard paths of a "name-0000i-of-0000N.gguf" model (GGUFError if one is missing)."""
    path = Path(path)
    split = split_name(path.name)
    if split is None:
        return [path]
    prefix, no, count = split
    if not 1 <= no <= count:
        raise GGUFError(f"bad split file name: shard {no} of {count}", path=path)
    paths = [path.with_name(f"{prefix}-{i:05d}-of-{count:05d}.gguf") for i in range(1, count + 1)]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise GGUFError(f"split model is missing shard(s): {', '.join(missing)}", path=path)
    return paths


@dataclass(frozen=True)
class ModelFile:
    """A whole model: one GGUF file or all shards of a split one."""

    path: Path  # first shard
    shards: tuple[GGUFInfo, ...]
    info: GGUFInfo  # first shard: carries the model metadata
    tensor_bytes: int  # sum over shards
    file_bytes: int  # sum of shard file sizes

    @property
    def tensors(self) -> tuple[TensorInfo, ...]:
        """Tensor infos of all shards, in shard order."""
        return tuple(t for s in self.shards for t in s.tensors)


def read_model(path: Path) -> ModelFile:
    """Read every shard of a model and check that they belong together."""
    return combine_shards(tuple(read_gguf(p) for p in split_paths(Path(path))))


def combine_shards(shards: tuple[GGUFInfo, ...]) -> ModelFile:
    """One model from its shards' headers, in order (GGUFError if they do not belong together)."""
    first, n = shards[0], len(shards)
    if n == 1 and (first.split_count or 1) > 1:
        raise GGUFError(
            f"split.count is {first.split_count} but the file name has no -00001-of-N suffix",
            path=first.path,
        )
    names: set[str] = set()
    for i, s in enumerate(shards):
        if n > 1 and (s.split_no, s.split_count) != (i, n):
            raise GGUFError(
                f"split.no/split.count are {s.split_no}/{s.split_count}, expected {i}/{n}",
                path=s.path,
            )
        for t in s.tensors:
            if t.name in names:
                raise GGUFError(f"tensor {t.name!r} appears in two shards", path=s.path)
            names.add(t.name)
    expected = first.split_tensors_count
    if n > 1 and expected is not None and expected != len(names):
        raise GGUFError(
            f"split.tensors.count is {expected} but the shards hold {len(names)}", path=first.path
        )
    return ModelFile(
        path=first.path,
        shards=shards,
        info=first,
        tensor_bytes=sum(s.tensor_bytes for s in shards),
        file_bytes=sum(s.file_size for s in shards),
    )

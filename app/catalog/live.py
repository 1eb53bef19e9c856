"""The live catalog: rescans the models dir when it changed, cheaply.

A rescan first compares a stat signature (name, size, mtime of every `*.gguf`, of models.toml and
of the pulled-model records); only when it differs are headers read, and then only of files whose
size or mtime changed. Pulls write into `.halo/partial/*.part` and rename into place, and a file
shorter than its header says (a copy in progress) is skipped until it is whole.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from app.catalog.catalog import Catalog, Defaults, scan
from app.catalog.shards import ModelFile, read_model, split_paths
from app.catalog.sources import state_dir

Signature = tuple[tuple[str, int, int], ...]
_ShardKey = tuple[tuple[str, int, int], ...]


class LiveCatalog:
    def __init__(self, models_dir: Path, models_file: Path, defaults: Defaults,
                 read: Callable[[Path], ModelFile] = read_model) -> None:
        self.models_dir = models_dir
        self.models_file = models_file
        self.defaults = defaults
        self._read_file = read
        self._cache: dict[Path, tuple[_ShardKey, ModelFile]] = {}
        self._signature: Signature | None = None
        self.current = Catalog(entries={}, problems=())
        self.refresh()

    def signature(self) -> Signature:
        out: list[tuple[str, int, int]] = []
        for directory, suffix in ((self.models_dir, ".gguf"),
                                  (state_dir(self.models_dir) / "sources", ".json")):
            try:
                with os.scandir(directory) as it:
                    for e in it:
                        if e.name.endswith(suffix):
                            try:
                                st = e.stat()
                            except OSError:
                                continue
                            out.append((e.path, st.st_size, st.st_mtime_ns))
            except OSError:
                continue
        try:
            st = self.models_file.stat()
            out.append((str(self.models_file), st.st_size, st.st_mtime_ns))
        except OSError:
            pass
        return tuple(sorted(out))

    def refresh(self) -> bool:
        """Rescan if anything changed on disk; True when the set of entries changed."""
        sig = self.signature()
        if sig == self._signature:
            return False
        catalog = scan(self.models_dir, self.models_file, self.defaults, read=self._read)
        self._signature = sig
        changed = catalog.entries != self.current.entries
        self.current = catalog
        live = {e.path for e in catalog}
        for path in [p for p in self._cache if p not in live]:
            del self._cache[path]
        return changed

    def _read(self, path: Path) -> ModelFile:
        key = tuple((str(p), st.st_size, st.st_mtime_ns)
                    for p in split_paths(path) for st in (p.stat(),))
        cached = self._cache.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        file = self._read_file(path)
        self._cache[path] = (key, file)
        return file

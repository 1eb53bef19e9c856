"""One file from the hub into `.halo/partial/<name>.part`, resumed, then checked against its sha256.

The partial file survives Ctrl-C and kills; the next pull sends a `Range` request from its size
(through huggingface_hub's `http_get`), unless the hub's ETag for the file changed meanwhile.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.catalog.sources import state_dir
from app.errors import ChecksumMismatch, HubError
from app.hub.refs import RemoteFile
from app.hub.remote import HubClient

_HASH_CHUNK = 4 << 20


@dataclass(frozen=True)
class PullEvent:
    """One progress report: `status` is resolving | waiting | downloading | verifying |
    success | error; bytes are of `file` (the repo path) when it is set."""

    status: str
    file: str | None = None
    completed: int = 0
    total: int = 0
    model: str | None = None
    detail: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.file is not None:
            out.update(file=self.file, completed=self.completed, total=self.total)
        if self.model is not None:
            out["model"] = self.model
        if self.detail:
            out.update(self.detail)
        return out


Emit = Callable[[PullEvent], None]


class PullCancelled(Exception):
    """The pull was cancelled (client gone); its partial files stay for the next pull."""


def partial_dir(models_dir: Path) -> Path:
    return state_dir(models_dir) / "partial"


def part_path(models_dir: Path, local_name: str) -> Path:
    return partial_dir(models_dir) / f"{local_name}.part"


def partial_size(models_dir: Path, local_name: str) -> int:
    try:
        return part_path(models_dir, local_name).stat().st_size
    except OSError:
        return 0


def sha256_of(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    return digest.hexdigest()


def fetch(hub: HubClient, repo: str, revision: str, remote: RemoteFile, local_name: str,
          models_dir: Path, emit: Emit, cancel: threading.Event) -> tuple[Path, int]:
    """Download (or finish downloading) one file; returns the verified partial file and the
    bytes transferred now. A sha256 mismatch deletes the partial file and raises."""
    part = part_path(models_dir, local_name)
    part.parent.mkdir(parents=True, exist_ok=True)
    etag_file = part.with_name(part.name + ".etag")
    resolved = hub.resolve(repo, remote.name, revision)
    if resolved.size != remote.size:
        raise HubError(f"{remote.name}: the hub lists {remote.size} bytes but serves "
                       f"{resolved.size}")
    previous = etag_file.read_text().strip() if etag_file.is_file() else None
    have = part.stat().st_size if part.is_file() else 0
    if have and (previous != (resolved.etag or "") or have > remote.size):
        part.unlink()  # another version of the file, or garbage: start over
        have = 0
    etag_file.write_text(resolved.etag or "")
    done = have
    transferred = 0
    emit(PullEvent("downloading", remote.name, done, remote.size))

    def on_bytes(n: int) -> None:
        nonlocal done, transferred
        if cancel.is_set():
            raise PullCancelled(f"pull of {remote.name} cancelled")
        done += n
        transferred += n
        emit(PullEvent("downloading", remote.name, done, remote.size))

    if have < remote.size:
        try:
            with part.open("ab") as out:
                hub.download(resolved, out, resume_size=have, on_bytes=on_bytes)
        except OSError as exc:  # includes http_get's size consistency check
            raise HubError(f"downloading {remote.name} failed: {exc}") from exc
    if remote.sha256 is not None:
        checked = 0

        def on_hashed(n: int) -> None:
            nonlocal checked
            checked += n
            emit(PullEvent("verifying", remote.name, checked, remote.size))

        actual = sha256_of(part, on_hashed)
        if actual != remote.sha256:
            part.unlink(missing_ok=True)
            etag_file.unlink(missing_ok=True)
            raise ChecksumMismatch(
                f"{remote.name}: sha256 {actual} does not match the hub's {remote.sha256}; "
                "the downloaded file was deleted")
    etag_file.unlink(missing_ok=True)
    return part, transferred

"""`halo pull`: plan (what to fetch, is there room) then execute (download, verify, rename).

Layout in the models dir: finished files at the top level (the catalog lists them), partial
downloads in `.halo/partial/`, the record of where a model came from in `.halo/sources/`, and
a lock per model in `.halo/locks/`. Two pulls of one model, from one process or two, take turns
on the lock: the second one reports the first one's progress and then finds nothing to do.
A model appears only when whole: its vision projector first, then its shards last to first.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from app.catalog.sources import PulledFile, Source, read_source, state_dir, write_source
from app.errors import InsufficientDisk
from app.hub.download import Emit, PullCancelled, PullEvent, fetch, partial_size, sha256_of
from app.hub.refs import Ref, RemoteFile, Selection, select
from app.hub.remote import HubClient

DiskFree = Callable[[Path], int]
GIB = 1 << 30


def disk_free(path: Path) -> int:
    return shutil.disk_usage(path).free


@dataclass(frozen=True)
class PullPlan:
    selection: Selection
    models_dir: Path
    todo: tuple[RemoteFile, ...]  # files not yet here (or not verified)
    need_bytes: int  # still to download, partial files counted as done
    free_bytes: int

    @property
    def model_id(self) -> str:
        return self.selection.model_id


@dataclass(frozen=True)
class PullResult:
    model: str
    files: tuple[str, ...]  # local names
    mmproj: str | None
    downloaded: int  # bytes transferred by this pull
    already_present: bool


def local_name(selection: Selection, remote: RemoteFile) -> str:
    """Model files keep their names; a projector is prefixed with the model id (they are often
    all called `mmproj-F16.gguf`)."""
    if selection.mmproj is not None and remote == selection.mmproj:
        return f"{selection.model_id}-{remote.basename}"
    return remote.basename


def _present(models_dir: Path, selection: Selection, remote: RemoteFile,
             record: Source | None) -> bool:
    name = local_name(selection, remote)
    path = models_dir / name
    try:
        if path.stat().st_size != remote.size:
            return False
    except OSError:
        return False
    if remote.sha256 is None:
        return True
    known = record.files.get(name) if record else None
    if known is not None:
        return known.sha256 == remote.sha256
    return sha256_of(path) == remote.sha256  # copied in by hand: check once


def plan_pull(hub: HubClient, ref: Ref, models_dir: Path,
              free: DiskFree = disk_free) -> PullPlan:
    """Resolve `ref` on the hub and check the disk; raises before any byte is downloaded."""
    selection = select(ref, hub.list_files(ref.repo, ref.revision))
    return plan_for(selection, models_dir, free)


def plan_for(selection: Selection, models_dir: Path, free: DiskFree) -> PullPlan:
    models_dir.mkdir(parents=True, exist_ok=True)
    record = read_source(models_dir, selection.model_id)
    todo = tuple(f for f in selection.files if not _present(models_dir, selection, f, record))
    need = sum(max(0, f.size - partial_size(models_dir, local_name(selection, f))) for f in todo)
    room = free(models_dir)
    if need > room:
        raise InsufficientDisk(
            f"not enough disk for {selection.source}: the download needs {need / GIB:.2f} GiB "
            f"({need} bytes), {models_dir} has {room / GIB:.2f} GiB ({room} bytes) free",
            need=need, free=room)
    return PullPlan(selection, models_dir, todo, need, room)


def execute(hub: HubClient, plan: PullPlan, emit: Emit,
            cancel: threading.Event | None = None) -> PullResult:
    """Download what the plan lists; emits progress; the model is listed only when whole."""
    cancel = cancel or threading.Event()
    selection, models_dir = plan.selection, plan.models_dir
    with _model_lock(models_dir, selection, emit, cancel):
        record = read_source(models_dir, selection.model_id)
        todo = [f for f in selection.files if not _present(models_dir, selection, f, record)]
        parts: dict[RemoteFile, Path] = {}
        downloaded = 0
        for remote in todo:
            name = local_name(selection, remote)
            parts[remote], n = fetch(hub, selection.repo, selection.revision, remote, name,
                                     models_dir, emit, cancel)
            downloaded += n
        names = tuple(local_name(selection, f) for f in selection.variant.files)
        mmproj = local_name(selection, selection.mmproj) if selection.mmproj else None
        write_source(models_dir, Source(
            model=selection.model_id, source=selection.source, repo=selection.repo,
            revision=selection.revision, commit=None, mmproj=mmproj,
            files={local_name(selection, f): PulledFile(f.name, f.sha256, f.size)
                   for f in selection.files}))
        # the projector first, then the shards last to first: the catalog lists shard 1
        order = ([selection.mmproj] if selection.mmproj else []) + list(
            reversed(selection.variant.files))
        for remote in order:
            if remote in parts:
                os.replace(parts[remote], models_dir / local_name(selection, remote))
    result = PullResult(selection.model_id, names, mmproj, downloaded, not todo)
    emit(PullEvent("success", model=selection.model_id, detail={
        "source": selection.source, "files": list(names), "mmproj": mmproj,
        "downloaded_bytes": downloaded, "already_present": not todo}))
    return result


@contextlib.contextmanager
def _model_lock(models_dir: Path, selection: Selection, emit: Emit,
                cancel: threading.Event) -> Iterator[None]:
    path = state_dir(models_dir) / "locks" / f"{selection.model_id}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        waited = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if cancel.is_set():
                    raise PullCancelled("pull cancelled while waiting") from None
                if not waited:
                    emit(PullEvent("waiting", detail={
                        "reason": "another pull of this model is running; joining it"}))
                    waited = True
                for remote in selection.files:
                    done = partial_size(models_dir, local_name(selection, remote))
                    if done:
                        emit(PullEvent("waiting", remote.name, done, remote.size))
                time.sleep(0.25)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)

"""`pull` against a loopback hub, through the real huggingface_hub client."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from app.catalog.catalog import Defaults, scan
from app.catalog.shards import read_model
from app.catalog.sources import read_source
from app.errors import ChecksumMismatch, HubNotFound, InsufficientDisk
from app.hub.download import PullCancelled, PullEvent, part_path
from app.hub.pull import execute, plan_pull
from app.hub.refs import parse_ref
from app.hub.remote import HubClient
from tests.hub.tiny import tiny_gguf, tiny_mmproj, tiny_split
from tests.hub_fake import FakeHub

DEFAULTS = Defaults(4096, 1, 300)


def pull(client: HubClient, ref: str, models: Path, **kw: object) -> list[PullEvent]:
    events: list[PullEvent] = []
    execute(client, plan_pull(client, parse_ref(ref), models), events.append, **kw)  # type: ignore[arg-type]
    return events


def listed(models: Path) -> list[str]:
    return [e.id for e in scan(models, models / "models.toml", DEFAULTS)]


def test_pull_lists_the_model_and_a_second_pull_is_a_no_op(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path) -> None:
    file = tiny_gguf(src / "Tiny-Q4_K_M.gguf", rows=4000)
    hub.add("org/Tiny-GGUF", file)
    tiny_gguf(src / "Tiny-Q8_0.gguf", rows=10)
    hub.add("org/Tiny-GGUF", src / "Tiny-Q8_0.gguf")
    models = tmp_path / "models"
    events = pull(client, "org/Tiny-GGUF", models)
    statuses = [e.status for e in events]
    assert statuses[0] == "downloading"
    assert statuses[-1] == "success"
    assert "verifying" in statuses
    progress = [e.completed for e in events if e.status == "downloading"]
    assert progress == sorted(progress)
    assert progress[-1] == file.stat().st_size
    assert events[-1].model == "Tiny-Q4_K_M"
    assert (models / "Tiny-Q4_K_M.gguf").read_bytes() == file.read_bytes()
    assert listed(models) == ["Tiny-Q4_K_M"]
    record = read_source(models, "Tiny-Q4_K_M")
    assert record is not None
    assert record.source == "org/Tiny-GGUF:Q4_K_M"
    entry = scan(models, models / "models.toml", DEFAULTS).get("Tiny-Q4_K_M")
    assert entry is not None
    assert entry.source == "org/Tiny-GGUF:Q4_K_M"
    served = hub.bytes_served("org/Tiny-GGUF", "Tiny-Q4_K_M.gguf")
    assert served == file.stat().st_size

    again = pull(client, "org/Tiny-GGUF:q4_k_m", models)
    assert [e.status for e in again] == ["success"]
    assert again[-1].to_dict()["already_present"] is True
    assert hub.bytes_served("org/Tiny-GGUF", "Tiny-Q4_K_M.gguf") == served
    assert not list((models / ".halo" / "partial").glob("*.part"))


def test_an_interrupted_pull_resumes_with_a_range_request(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path) -> None:
    # 24 MiB: huggingface_hub's http_get writes 10 MiB chunks
    file = tiny_gguf(src / "Big-Q4_K_M.gguf", rows=6 * 2**20 // 256)
    size = file.stat().st_size
    hub.add("org/Big", file)
    models = tmp_path / "models"
    cancel = threading.Event()
    seen: list[PullEvent] = []

    def emit(event: PullEvent) -> None:
        seen.append(event)
        if event.status == "downloading" and event.completed > 0:
            cancel.set()  # stop after the first chunk, like a Ctrl-C

    plan = plan_pull(client, parse_ref("org/Big"), models)
    with pytest.raises(PullCancelled):
        execute(client, plan, emit, cancel)
    part = part_path(models, "Big-Q4_K_M.gguf")
    kept = part.stat().st_size
    assert 0 < kept < size
    assert listed(models) == []  # a partial file is never a model

    hub.wait_idle()
    first = hub.bytes_served("org/Big", "Big-Q4_K_M.gguf")
    events = pull(client, "org/Big", models)
    second = hub.bytes_served("org/Big", "Big-Q4_K_M.gguf") - first
    assert second == size - kept  # only the rest came over the wire
    assert hub.ranges_of("Big-Q4_K_M.gguf")[-1] == f"bytes={kept}-"
    downloading = [e for e in events if e.status == "downloading"]
    assert downloading[0].completed == kept
    assert (models / "Big-Q4_K_M.gguf").read_bytes() == file.read_bytes()
    assert listed(models) == ["Big-Q4_K_M"]


def test_a_corrupted_byte_is_caught_and_the_file_deleted(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path) -> None:
    hub.add("org/Bad", tiny_gguf(src / "Bad-Q4_K_M.gguf"))
    hub.corrupt("org/Bad", "Bad-Q4_K_M.gguf", 300_000)
    models = tmp_path / "models"
    with pytest.raises(ChecksumMismatch, match="does not match the hub's .* deleted"):
        pull(client, "org/Bad", models)
    assert not (models / "Bad-Q4_K_M.gguf").exists()
    assert not part_path(models, "Bad-Q4_K_M.gguf").exists()
    assert listed(models) == []


def test_a_split_model_arrives_whole(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path) -> None:
    shards = tiny_split(src / "Split-Q4_K_M", 3, rows=2000)
    for shard in shards:
        hub.add("org/Split", shard, name=f"Q4_K_M/{shard.name}")
    models = tmp_path / "models"
    events = pull(client, "org/Split:Q4_K_M", models)
    assert [e.file for e in events if e.status == "verifying" and e.completed == e.total] == [
        f"Q4_K_M/{s.name}" for s in shards]
    for shard in shards:
        assert (models / shard.name).read_bytes() == shard.read_bytes()
    assert listed(models) == ["Split-Q4_K_M"]
    assert len(read_model(models / shards[0].name).shards) == 3


def test_the_mmproj_file_is_fetched_and_recorded(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path) -> None:
    hub.add("org/Vision", tiny_gguf(src / "Vision-Q4_K_M.gguf"))
    hub.add("org/Vision", tiny_mmproj(src / "mmproj-F16.gguf"))
    models = tmp_path / "models"
    events = pull(client, "org/Vision", models)
    assert events[-1].to_dict()["mmproj"] == "Vision-Q4_K_M-mmproj-F16.gguf"
    assert (models / "Vision-Q4_K_M-mmproj-F16.gguf").is_file()
    catalog = scan(models, models / "models.toml", DEFAULTS)
    assert [e.id for e in catalog] == ["Vision-Q4_K_M"]  # the projector is not a model
    entry = catalog.get("Vision-Q4_K_M")
    assert entry is not None
    assert entry.mmproj == models / "Vision-Q4_K_M-mmproj-F16.gguf"


def test_not_enough_disk_is_refused_before_any_download(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path) -> None:
    file = tiny_gguf(src / "Tiny-Q4_K_M.gguf")
    hub.add("org/Tiny", file)
    with pytest.raises(InsufficientDisk) as info:
        plan_pull(client, parse_ref("org/Tiny"), tmp_path / "models", free=lambda _: 1000)
    assert f"({file.stat().st_size} bytes)" in info.value.message
    assert "(1000 bytes) free" in info.value.message
    assert not any(p.startswith("/cdn/") for _, p, _ in hub.requests)


def test_unknown_repo_and_variant(hub: FakeHub, client: HubClient, src: Path,
                                  tmp_path: Path) -> None:
    with pytest.raises(HubNotFound, match="org/Nope was not found"):
        plan_pull(client, parse_ref("org/Nope"), tmp_path)
    hub.add("org/Tiny", tiny_gguf(src / "Tiny-Q8_0.gguf"))
    hub.add("org/Tiny", tiny_gguf(src / "Tiny-Q6_K.gguf"))
    with pytest.raises(HubNotFound, match="choose one of: Q6_K .*, Q8_0"):
        plan_pull(client, parse_ref("org/Tiny"), tmp_path)


def test_two_concurrent_pulls_download_once(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path) -> None:
    file = tiny_gguf(src / "Both-Q4_K_M.gguf", rows=20_000)
    hub.add("org/Both", file)
    hub.rate = 20e6  # ~0.5 s for the file, so the two pulls overlap
    models = tmp_path / "models"
    results: list[list[PullEvent]] = [[], []]

    def run(i: int) -> None:
        results[i] = pull(HubClient(hub.url), "org/Both", models)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert all(r and r[-1].status == "success" for r in results)
    assert hub.bytes_served("org/Both", "Both-Q4_K_M.gguf") == file.stat().st_size
    assert sorted(r[-1].to_dict()["already_present"] for r in results) == [False, True]
    joined = next(r for r in results if r[-1].to_dict()["already_present"])
    assert joined[0].status == "waiting"

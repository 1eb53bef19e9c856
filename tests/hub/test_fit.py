"""`halo fit`: an 80B-class model's header is read over HTTP ranges; the weights never move."""

from __future__ import annotations

import time
from pathlib import Path

from app.catalog.catalog import Defaults, scan
from app.factory import estimate_entry
from app.hardware.probe import ProbeReport
from app.hub.fit import check_fit
from app.hub.refs import parse_ref, select
from app.hub.remote import HubClient
from tests.hub_fake import FakeHub
from tests.model_headers import write_model

GIB = 1 << 30
DEFAULTS = Defaults(8192, 2, 300)


def test_fit_reads_only_the_header_and_agrees_with_the_scheduler(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path,
        probe_report: ProbeReport) -> None:
    path = write_model(src, "qwen3-next-80b-a3b")  # sparse: ~48 GB apparent, KBs on disk
    size = path.stat().st_size
    assert size > 40 * 10**9
    hub.add("Qwen/Qwen3-Next-80B-A3B-Instruct-GGUF", path, sha256="0" * 64)
    choice = probe_report.choice
    models = tmp_path / "models"
    models.mkdir()
    selection = select(parse_ref("Qwen/Qwen3-Next-80B-A3B-Instruct-GGUF:Q4_K_M"),
                       client.list_files("Qwen/Qwen3-Next-80B-A3B-Instruct-GGUF"))

    started = time.monotonic()
    report = check_fit(client, selection, models_dir=models, models_file=models / "models.toml",
                       defaults=DEFAULTS, estimate_for=lambda e: estimate_entry(choice, e),
                       budget=96 * GIB, loaded={"other": 60 * GIB})
    seconds = time.monotonic() - started

    served = hub.bytes_served("Qwen/Qwen3-Next-80B-A3B-Instruct-GGUF", path.name)
    assert served == report.header_bytes
    assert served < 16 * 2**20, f"read {served} bytes"  # a few MB, never the weights
    assert seconds < 10
    assert report.file_bytes == size

    # the same estimate the scheduler makes for the same file once it is local
    local = scan(src, src / "models.toml", DEFAULTS).get(path.stem)
    assert local is not None
    assert report.estimate == estimate_entry(choice, local)
    assert (report.n_ctx, report.parallel) == (local.n_ctx, local.parallel)
    need = report.estimate.total
    assert 40 * GIB < need < 96 * GIB
    assert report.verdict == "fits_alone"  # 60 GiB are held by another model now
    assert "fits alone" in report.describe()
    assert f"needs {need / GIB:.1f} GiB at n_ctx 8192 x 2" in report.describe()

    small = check_fit(client, selection, models_dir=models, models_file=models / "models.toml",
                      defaults=DEFAULTS, estimate_for=lambda e: estimate_entry(choice, e),
                      budget=32 * GIB, loaded={})
    assert small.verdict == "never"
    assert "never fits" in small.describe()
    roomy = check_fit(client, selection, models_dir=models, models_file=models / "models.toml",
                      defaults=DEFAULTS, estimate_for=lambda e: estimate_entry(choice, e),
                      budget=120 * GIB, loaded={"other": 10 * GIB})
    assert roomy.verdict == "fits"
    assert roomy.to_dict()["fits"] is True


def test_fit_uses_models_toml_settings_for_the_file(
        hub: FakeHub, client: HubClient, src: Path, tmp_path: Path,
        probe_report: ProbeReport) -> None:
    path = write_model(src, "qwen3-14b")
    hub.add("Qwen/Qwen3-14B-GGUF", path, sha256="0" * 64)
    models = tmp_path / "models"
    models.mkdir()
    (models / "models.toml").write_text(
        f'[models.qwen14]\npath = "{path.name}"\nn_ctx = 32768\nparallel = 1\n')
    selection = select(parse_ref("Qwen/Qwen3-14B-GGUF"), client.list_files("Qwen/Qwen3-14B-GGUF"))
    report = check_fit(client, selection, models_dir=models, models_file=models / "models.toml",
                       defaults=DEFAULTS, estimate_for=lambda e: estimate_entry(
                           probe_report.choice, e), budget=96 * GIB, loaded={"qwen14": 50 * GIB})
    assert (report.model, report.n_ctx, report.parallel) == ("qwen14", 32768, 1)
    assert report.loaded == 0  # its own reservation does not count against it

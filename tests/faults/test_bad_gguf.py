"""Corrupt, truncated and hostile GGUF files next to good ones: skipped or failed, never fatal."""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from app.catalog.gguf import read_gguf
from tests.conftest import SMOLLM, _require
from tests.e2e.server import Server, halo_server
from tests.faults.conftest import SERVER_ARGS, envelope_ok, rss_bytes
from tests.gguf_writer import Tensor, write_gguf

GOOD = "SmolLM2-135M-Instruct.Q4_1"
F32 = 0


def _bad_files(root: Path, smol: Path) -> dict[str, str]:
    """Write the hostile files; returns {model id: what it is}."""
    info = read_gguf(smol)
    header = smol.read_bytes()[:info.data_offset]
    files = {
        "empty": b"",
        "garbage": os.urandom(64 << 10),
        "not-gguf": b"this is a text file named .gguf\n" * 100,
        "truncated-header": header[: len(header) // 2],
        "truncated-data": header + b"\0" * 4096,
        "huge-counts": b"GGUF" + struct.pack("<IQQ", 3, 2**62, 2**62),
        "huge-string": b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 2**60),
    }
    for name, data in files.items():
        (root / f"{name}.gguf").write_bytes(data)
    # a well-formed header of an architecture llama.cpp does not know: listed, fails to load
    write_gguf(root / "alien-arch.gguf",
               {"general.architecture": "alien", "alien.block_count": 1,
                "alien.context_length": 512},
               [Tensor("token_embd.weight", (64, 256), F32)])
    return {**dict.fromkeys(files, "corrupt"), "alien-arch": "unknown architecture"}


@pytest.fixture(scope="module")
def bad_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, dict[str, str], Path]]:
    tmp = tmp_path_factory.mktemp("badgguf")
    root = tmp / "models"
    root.mkdir()
    smol = _require(SMOLLM)
    (root / smol.name).symlink_to(smol)
    bad = _bad_files(root, smol)
    with halo_server(root, tmp, args=SERVER_ARGS) as srv:
        yield srv, bad, root


def _ask(server: Server, model: str) -> httpx.Response:
    return httpx.post(server.base_url + "/completions", timeout=120,
                      json={"model": model, "prompt": "Hello", "max_tokens": 4})


def test_bad_files_are_skipped_or_fail_cleanly(
    bad_server: tuple[Server, dict[str, str], Path], figures: Callable[[str], None],
) -> None:
    server, bad, root = bad_server
    front0 = rss_bytes(server.process.pid)
    listed = {m["id"]: m for m in httpx.get(server.base_url + "/models", timeout=10).json()["data"]}
    assert GOOD in listed
    outcomes: dict[str, str] = {}
    t0 = time.monotonic()
    for model in bad:
        resp = _ask(server, model)
        assert resp.status_code in (400, 404, 503), (model, resp.text)
        assert envelope_ok(resp), resp.text
        message = resp.json()["error"]["message"]
        if model in listed:  # header read fine: loading must fail and say why
            assert resp.status_code == 503, resp.text
            assert resp.json()["error"]["code"] == "model_load_failed"
            status = httpx.get(f"{server.base_url}/models/{model}", timeout=10).json()
            assert status["status"] == "failed"
            assert status.get("failure")
            outcomes[model] = f"listed, load failed ({resp.status_code}): {message[:60]}"
        else:  # skipped at scan time, with the reason in the log
            assert resp.status_code == 404
            assert f"{model}.gguf" in server.log()
            outcomes[model] = "skipped (logged)"
        assert _ask(server, GOOD).status_code == 200  # the good model keeps serving
    # files dropped while serving never disturb it
    (root / "dropped-live.gguf").write_bytes(os.urandom(1 << 20))
    with _require(SMOLLM).open("rb") as f:
        (root / "dropped-trunc.gguf").write_bytes(f.read(1 << 20))
    for model in ("dropped-live", "dropped-trunc"):
        resp = _ask(server, model)
        assert resp.status_code in (404, 503), resp.text
        assert envelope_ok(resp)
    assert _ask(server, GOOD).status_code == 200
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    growth = rss_bytes(server.process.pid) - front0
    figures(f"bad GGUF: {len(bad)} hostile files + 2 dropped while serving in "
          f"{time.monotonic() - t0:.1f} s; front RSS growth {growth / 2**20:+.1f} MiB; "
          + "; ".join(f"{k}: {v}" for k, v in outcomes.items()))
    assert growth < 64 << 20

"""Issue 10: the installed build runs here, a broken CPU variant or file fails the *load* with
its cause in words, and a model that keeps dying is not restarted on every request."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from app.hardware.cpu_variants import AMX_VARIANTS
from app.hardware.llama_devices import find_lib_dir
from tests.conftest import SMOLLM, _require
from tests.e2e.server import Server, halo_server

pytestmark = pytest.mark.e2e

# ~500 tokens of ordinary text: large enough that every matrix kernel of the CPU backend runs
LONG_PROMPT = " ".join(
    f"Paragraph {i}: the harbour master counted {i * 7} boats, wrote the tide tables by hand "
    "and sent them to the lighthouse keeper before the evening ferry left."
    for i in range(18)
) + " Summarise the paragraphs above in one sentence."


def test_long_prompt_chat_and_the_variant_in_system(server: Server) -> None:
    resp = httpx.post(server.base_url + "/chat/completions", timeout=120, json={
        "model": "smollm2", "max_tokens": 16, "temperature": 0,
        "messages": [{"role": "user", "content": LONG_PROMPT}]})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["usage"]["prompt_tokens"] >= 500
    assert body["choices"][0]["message"]["content"]
    cpu = httpx.get(server.url + "/system", timeout=10).json()["probe"]["llama"]["cpu"]
    assert cpu["mode"] == "modules", cpu
    assert cpu["variant"], cpu
    assert cpu["features"], "the CPU backend's features are reported"
    if cpu["amx_verdict"] != "executes":
        assert cpu["variant"] not in AMX_VARIANTS


def _bogus_variant(directory: Path) -> None:
    """A CPU 'variant' that claims the best score and dies by SIGILL (ud2) when ggml starts it:
    a library built for instructions this machine does not run."""
    source = directory / "bogus.c"
    source.write_text(
        "int ggml_backend_score(void) { return 1 << 24; }\n"
        "void *ggml_backend_init(void) { __builtin_trap(); return 0; }\n")
    cc = shutil.which("gcc") or shutil.which("cc")
    assert cc, "a C compiler is needed to build llama-cpp-python too"
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o",
                    str(directory / "libggml-cpu-bogus.so"), str(source)], check=True)


def _lib_with_bogus_variant(tmp: Path) -> Path:
    real = find_lib_dir({})
    assert real is not None
    assert (real / "libllama.so").exists()
    lib = tmp / "lib"
    lib.mkdir()
    for item in real.iterdir():
        (lib / item.name).symlink_to(item)
    _bogus_variant(lib)
    return lib


def _status(server: Server, model: str) -> dict[str, object]:
    data: dict[str, object] = httpx.get(server.base_url + f"/models/{model}", timeout=10).json()
    return data


def test_wrong_cpu_variant_fails_the_load_with_the_cause(
        tmp_path: Path, record_property: Callable[[str, object], None]) -> None:
    lib = _lib_with_bogus_variant(tmp_path)
    models = tmp_path / "models"
    models.mkdir()
    (models / SMOLLM.name).symlink_to(_require(SMOLLM))
    with halo_server(models, tmp_path, env={"LLAMA_CPP_LIB_PATH": str(lib)}) as srv:
        model = SMOLLM.stem
        started = time.monotonic()
        answers = []
        for _ in range(6):
            resp = httpx.post(srv.base_url + "/chat/completions", timeout=60, json={
                "model": model, "max_tokens": 4,
                "messages": [{"role": "user", "content": "hi"}]})
            answers.append(resp)
        elapsed = time.monotonic() - started
        for resp in answers:
            assert resp.status_code == 503, resp.text
            message = resp.json()["error"]["message"]
            assert "SIGILL" in message, message
            assert "CPU instructions this machine cannot run" in message, message
            assert str(tmp_path) not in message
        status = _status(srv, model)
        assert status["status"] == "failed", status
        assert "SIGILL" in str(status), status
        health = httpx.get(srv.url + "/health", timeout=10).json()
        assert "failed" in str(health), health
        starts = len(re.findall(r"worker \d+ started for", srv.log()))
        record_property("worker_starts_for_6_requests", starts)
        record_property("seconds_for_6_requests", round(elapsed, 2))
        assert 1 <= starts <= 3, srv.log()[-3000:]


def test_truncated_model_is_explained_by_id_not_path(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    data = _require(SMOLLM).read_bytes()
    (models / "broken.gguf").write_bytes(data[: len(data) // 2])
    (models / SMOLLM.name).symlink_to(SMOLLM)
    with halo_server(models, tmp_path) as srv:
        resp = httpx.post(srv.base_url + "/chat/completions", timeout=60, json={
            "model": "broken", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]})
        if resp.status_code == 404:  # the catalog refused it up front: it must say why
            assert "broken" in srv.log()
            return
        assert resp.status_code == 503, resp.text
        message = resp.json()["error"]["message"]
        assert "broken" in message
        assert "truncated" in message, message
        assert str(tmp_path) not in message
        assert "/" not in message.split("llama.cpp:")[0]
        good = httpx.post(srv.base_url + "/chat/completions", timeout=60, json={
            "model": SMOLLM.stem, "max_tokens": 4,
            "messages": [{"role": "user", "content": "hi"}]})
        assert good.status_code == 200, good.text

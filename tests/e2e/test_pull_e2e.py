"""Issue 11 acceptance: `halo pull` from a loopback hub into the models dir of a running
`halo serve`; the model is listed without a restart and answers the real openai SDK."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tests.conftest import GEMMA, REPO, SMOLLM, _require
from tests.e2e.server import Server, halo_server
from tests.hub.conftest import hub_env
from tests.hub_fake import FakeHub, fake_hub

pytestmark = pytest.mark.e2e


def halo(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    proc = subprocess.run([sys.executable, "-m", "app", *args], cwd=REPO, capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=180)
    return proc.returncode, proc.stdout, proc.stderr


def events(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def test_pull_into_a_running_server(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    with fake_hub() as hub:
        env = hub_env(tmp_path / "hf-home", hub.url)
        hub.add("testorg/SmolLM2-GGUF", _require(SMOLLM))
        hub.add("testorg/gemma-3-270m-GGUF", _require(GEMMA))
        with halo_server(models, tmp_path, env=env) as server:
            _pull_into(server, hub, env, models)


def _pull_into(server: Server, hub: FakeHub, env: dict[str, str], models: Path) -> None:
    client = openai.OpenAI(base_url=server.base_url, api_key="unused")
    assert [m.id for m in client.models.list()] == []

    rc, out, err = halo(env, "pull", "testorg/SmolLM2-GGUF:Q4_1", "--models-dir",
                        str(models), "--server", server.url)
    assert rc == 0, err
    assert "fits next to the models loaded now" in err or ": fits" in err
    progress = [e for e in events(out) if e["status"] == "downloading"]
    assert progress[-1]["completed"] == progress[-1]["total"] == SMOLLM.stat().st_size
    model_id = SMOLLM.stem
    assert events(out)[-1] == {**events(out)[-1], "status": "success", "model": model_id}

    # listed by the running server, no restart, and it answers
    listed = {m.id: m.model_dump() for m in client.models.list()}
    assert listed[model_id]["source"] == "testorg/SmolLM2-GGUF:Q4_1"
    reply = client.chat.completions.create(
        model=model_id, messages=[{"role": "user", "content": "Say hi."}], max_tokens=8)
    assert reply.choices[0].message.content

    # a second pull is a no-op
    served = hub.bytes_served("testorg/SmolLM2-GGUF", SMOLLM.name)
    rc, out, err = halo(env, "pull", "testorg/SmolLM2-GGUF:q4_1", "--models-dir",
                        str(models), "--server", server.url)
    assert rc == 0, err
    assert [e["status"] for e in events(out)] == ["success"]
    assert hub.bytes_served("testorg/SmolLM2-GGUF", SMOLLM.name) == served

    # POST /models/pull streams progress as it happens, then the final event
    seen: list[Any] = []
    with httpx.stream("POST", server.url + "/models/pull",
                      json={"model": "testorg/gemma-3-270m-GGUF"}, timeout=120) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line.startswith("data: "):
                data = line[len("data: "):]
                seen.append(data if data == "[DONE]" else json.loads(data))
    assert seen[-1] == "[DONE]"
    assert seen[-2]["status"] == "success"
    assert seen[-2]["model"] == GEMMA.stem
    done = [e["completed"] for e in seen[:-1] if e["status"] == "downloading"]
    assert done == sorted(done)
    assert done[-1] == GEMMA.stat().st_size
    assert GEMMA.stem in [m.id for m in client.models.list()]

    # removing a loaded model needs --force, which unloads it first
    rc, out, err = halo(env, "rm", model_id, "--models-dir", str(models),
                        "--server", server.url)
    assert rc == 1
    assert "is loaded" in err
    rc, out, err = halo(env, "rm", model_id, "--force", "--models-dir", str(models),
                        "--server", server.url)
    assert rc == 0, err
    assert [m.id for m in client.models.list()] == [GEMMA.stem]
    assert not (models / SMOLLM.name).exists()

"""Real coding agents against halo: the Codex CLI (Responses API) and Claude Code (Messages
API), installed from npm by `make agents` into .cache/agents, each completing a one-line
prompt on Gemma 3 270M with a 32k context (their prompts are 10-20k tokens with dozens of
tools). Telemetry, update checks and other remote features are off; nothing leaves
127.0.0.1. The answers of a 270M model are poor: what counts is the protocol round trip.

Run with `make test-agents` (minutes on 2 cores: the prefill of each agent's prompt).
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import GEMMA, GEMMA_TEMPLATE, REPO, _require
from tests.e2e.server import Server, halo_server

log = logging.getLogger(__name__)
pytestmark = [pytest.mark.agents, pytest.mark.timeout(1500)]

MODEL = "gemma3-270m"
AGENTS = Path(os.environ.get("HALO_AGENTS_DIR", REPO / ".cache" / "agents"))
PROMPT = "Reply with one short sentence: what is the capital of France?"


def _bin(name: str) -> Path:
    path = AGENTS / "node_modules" / ".bin" / name
    if not path.exists():
        pytest.fail(f"{path} is missing: run `make agents`")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("agents")
    models = tmp / "models"
    models.mkdir()
    (models / GEMMA.name).symlink_to(_require(GEMMA))
    (models / "models.toml").write_text(
        f'[models.{MODEL}]\npath = "{GEMMA.name}"\nn_ctx = 32768\nparallel = 1\n'
        # the agents ask for up to 32k tokens (or none) and a 270M base model, sampled, may
        # not stop: one sentence of answer. Both agents count a reply cut by max tokens as a
        # failure, and a newline alone once failed to come within 64 tokens (CI, stop 20)
        f'n_batch = 512\nmax_tokens = 256\nstop = ["\\n", ".", "?", "!"]\n'
        f"chat_template = '''{GEMMA_TEMPLATE}'''\n")
    with halo_server(models, tmp, args=["--preload", MODEL], timeout=180) as srv:
        yield srv


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    started = time.monotonic()
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=1200, stdin=subprocess.DEVNULL, check=False)
    log.info("%s: exit %d after %.0f s\nstdout: %s\nstderr: %s", Path(argv[0]).name,
             proc.returncode, time.monotonic() - started, proc.stdout[-2000:],
             proc.stderr[-3000:])
    return proc


def _base_env(home: Path) -> dict[str, str]:
    keep = ("PATH", "LANG", "TERM", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(HOME=str(home), NO_COLOR="1", CI="1")
    return env


def _prompt_tokens(server: Server) -> float:
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    for line in metrics.splitlines():
        if line.startswith(f'halo_prompt_tokens_total{{model="{MODEL}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_codex_exec(server: Server, tmp_path: Path) -> None:
    codex_home = tmp_path / "codex"
    codex_home.mkdir()
    (codex_home / "config.toml").write_text(f"""
model = "{MODEL}"
model_provider = "halo"
approval_policy = "never"
sandbox_mode = "read-only"
check_for_update_on_startup = false

[model_providers.halo]
name = "halo"
base_url = "{server.base_url}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
stream_idle_timeout_ms = 1200000

[analytics]
enabled = false

[feedback]
enabled = false

[otel]
exporter = "none"
log_user_prompt = false
""")
    env = _base_env(tmp_path) | {"CODEX_HOME": str(codex_home)}
    before = _prompt_tokens(server)
    proc = _run([str(_bin("codex")), "exec", "--skip-git-repo-check", PROMPT], env, tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip()
    log.info("codex sent %.0f prompt tokens", _prompt_tokens(server) - before)


def test_claude_code_print(server: Server, tmp_path: Path) -> None:
    env = _base_env(tmp_path) | {
        "ANTHROPIC_BASE_URL": server.url,
        "ANTHROPIC_API_KEY": "halo-local",
        "ANTHROPIC_MODEL": MODEL,
        "ANTHROPIC_SMALL_FAST_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_HAIKU_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_SONNET_MODEL": MODEL,
        "ANTHROPIC_DEFAULT_OPUS_MODEL": MODEL,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_BUG_COMMAND": "1",
        "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
        "API_TIMEOUT_MS": "1200000",
        "MAX_THINKING_TOKENS": "0",
    }
    before = _prompt_tokens(server)
    proc = _run([str(_bin("claude")), "-p", PROMPT, "--model", MODEL,
                 "--max-turns", "1"], env, tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip()
    log.info("claude sent %.0f prompt tokens", _prompt_tokens(server) - before)

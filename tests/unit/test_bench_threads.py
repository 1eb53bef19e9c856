"""`bench.run --threads`: every server's command line carries the thread count it is given."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import build_llama_server, run, servers


def _argv_value(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize("name", ["halo", "halo-nospec", "halo-f16kv"])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_halo_gets_the_thread_count(tmp_path: Path, name: str, threads: int) -> None:
    model = tmp_path / servers.MODEL_FILE
    model.write_bytes(b"GGUF")
    launch = servers.SERVERS[name].prepare(model, servers.free_port(), threads)
    try:
        assert _argv_value(launch.argv, "--n-threads") == str(threads)
        models_dir = Path(_argv_value(launch.argv, "--models-dir"))
        toml = (models_dir / "models.toml").read_text(encoding="utf-8")
        assert ('cache_type_k = "f16"' in toml) == (name == "halo-f16kv")
    finally:
        launch.cleanup()
    assert not models_dir.exists()


def test_llama_cpp_python_gets_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(servers, "ensure_bench_venv", lambda: Path("/bench/venv/bin/python"))
    launch = servers.SERVERS["llama-cpp-python"].prepare(Path("m.gguf"), 1234, 1)
    assert _argv_value(launch.argv, "--n_threads") == "1"
    assert _argv_value(launch.argv, "--n_threads_batch") == "1"


def test_llama_server_gets_the_thread_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(build_llama_server, "is_built", lambda: True)
    monkeypatch.setattr(build_llama_server, "binary_path", lambda: Path("/ls/llama-server"))
    for name in ("llama-server", "llama-server-ngram-mod"):
        launch = servers.SERVERS[name].prepare(Path("m.gguf"), 1234, 1)
        assert _argv_value(launch.argv, "-t") == "1"


@pytest.mark.parametrize("value", ["0", "-1"])
def test_a_thread_count_below_one_is_refused(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        run.main(["--threads", value, "--workloads", "plain"])
    assert exc.value.code == 2
    assert "threads must be positive" in capsys.readouterr().err

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from app.config import load_settings


def test_defaults_bind_loopback() -> None:
    s = load_settings({}, env={})
    assert (s.host, s.port, s.backend) == ("127.0.0.1", 8080, "auto")
    assert s.models_dir == Path("models")
    assert s.api_keys == []
    assert s.models_file_path == Path("models/models.toml")


def test_precedence_cli_env_file_defaults(tmp_path: Path) -> None:
    toml = tmp_path / "halo.toml"
    toml.write_text('port = 9000\nhost = "0.0.0.0"\nlog_level = "debug"\nbackend = "vulkan"\n')
    env = {"HALO_PORT": "9100", "HALO_HOST": "127.0.0.2"}
    s = load_settings({"port": 9200}, toml, env=env)
    assert s.port == 9200  # CLI beats env and file
    assert s.host == "127.0.0.2"  # env beats file
    assert s.log_level == "debug"  # file beats default
    assert s.backend == "vulkan"
    assert s.default_n_ctx == 4096  # default


def test_env_lists_and_sizes() -> None:
    env = {"HALO_API_KEYS": "a, b,,c", "HALO_MEMORY_BUDGET": "96GiB", "HALO_PRELOAD": "m1"}
    s = load_settings({}, env=env)
    assert s.api_keys == ["a", "b", "c"]
    assert s.memory_budget == 96 * 2**30
    assert s.preload == ["m1"]


def test_config_file_from_env(tmp_path: Path) -> None:
    toml = tmp_path / "x.toml"
    toml.write_text("port = 1234\n")
    assert load_settings({}, env={"HALO_CONFIG": str(toml)}).port == 1234


@pytest.mark.parametrize(
    ("cli", "env"),
    [({"port": 70000}, {}), ({}, {"HALO_BACKEND": "cuda"}), ({"bogus": 1}, {})],
)
def test_invalid_settings_rejected(cli: dict[str, object], env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        load_settings(cli, env=env)


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings({}, tmp_path / "absent.toml", env={})

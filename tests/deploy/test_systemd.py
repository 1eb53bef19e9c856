"""deploy/halo.service and deploy/halo.env.example."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from app.config import Settings, load_settings
from tests.deploy.dashboard import DEPLOY
from tests.system_tools import require_tool

UNIT = DEPLOY / "halo.service"
ENV_EXAMPLE = DEPLOY / "halo.env.example"


def unit() -> dict[str, dict[str, list[str]]]:
    """section -> key -> values (systemd keys may repeat)."""
    out: dict[str, dict[str, list[str]]] = {}
    section = ""
    for raw in UNIT.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            out[section] = {}
            continue
        key, _, value = line.partition("=")
        out[section].setdefault(key.strip(), []).append(value.strip())
    return out


def one(section: str, key: str) -> str:
    values = unit()[section][key]
    assert len(values) == 1, f"{key} set {len(values)} times"
    return values[0]


def test_service_basics() -> None:
    assert one("Service", "Restart") == "on-failure"
    assert one("Service", "EnvironmentFile") == "/etc/halo/halo.env"
    assert one("Service", "User") not in {"root", "0"}
    assert set(one("Service", "SupplementaryGroups").split()) == {"render", "video"}
    assert one("Service", "ExecStart").split()[1:] == ["serve"]
    assert one("Install", "WantedBy") == "multi-user.target"


def test_hardening_does_not_hide_the_gpu() -> None:
    service = unit()["Service"]
    assert one("Service", "NoNewPrivileges") == "yes"
    assert one("Service", "ProtectSystem") == "strict"
    assert one("Service", "PrivateTmp") == "yes"
    # these would take /dev/dri and /dev/kfd away, or break the GPU runtimes
    assert service.get("PrivateDevices", ["no"]) == ["no"]
    assert service.get("DevicePolicy", ["auto"]) == ["auto"]
    assert service.get("MemoryDenyWriteExecute", ["no"]) == ["no"]
    assert service.get("PrivateUsers", ["no"]) == ["no"]
    assert "ProtectProc" not in service
    for value in service.get("InaccessiblePaths", []) + service.get("TemporaryFileSystem", []):
        assert "/dev" not in value, value
        assert "/sys" not in value, value


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = require_tool("systemd-analyze")
    true = shutil.which("true")
    assert true
    # verify checks that ExecStart exists; /opt/halo is not installed here
    text = UNIT.read_text().replace("ExecStart=/opt/halo/bin/halo", f"ExecStart={true}")
    assert text != UNIT.read_text()
    copy = tmp_path / "halo.service"
    copy.write_text(text)
    result = subprocess.run([analyze, "verify", str(copy)], capture_output=True, text=True,
                            check=False, timeout=60)
    # unknown keys and bad values are only warnings: any output is a failure here
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
    assert result.stdout.strip() == "", result.stdout


def env_example() -> dict[str, str]:
    values: dict[str, str] = {}
    for raw in ENV_EXAMPLE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, raw
        assert key == key.strip(), raw
        assert key.isupper(), raw
        values[key] = value
    return values


def test_env_example_names_only_real_settings() -> None:
    fields = {f"HALO_{name.upper()}" for name in Settings.model_fields}
    commented = {line.lstrip("# ").split("=", 1)[0] for line in
                 ENV_EXAMPLE.read_text().splitlines() if line.startswith("# HALO_")}
    active = env_example()
    assert set(active) <= fields, set(active) - fields
    assert commented <= fields, commented - fields
    assert active["HALO_HOST"] == "127.0.0.1", "loopback by default"


def test_env_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # no ./halo.toml
    settings = load_settings(env=env_example(), config_file=None)
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.models_dir == Path("/var/lib/halo/models")

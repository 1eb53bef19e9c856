"""Paths and loaders shared by the hardware tests: fixture machines and captured parser input."""

from __future__ import annotations

from pathlib import Path

from app.hardware.commands import fixture_env
from app.hardware.probe import ProbeReport, probe

MACHINES = Path(__file__).resolve().parents[2] / "fixtures" / "machines"
DATA = Path(__file__).resolve().parent / "data"


def machine_probe(
    name: str,
    *,
    requested: str = "auto",
    memory_budget: int | None = None,
    allow_software_vulkan: bool = False,
) -> ProbeReport:
    """Probe a fixture machine with its captured environment, running no command."""
    root = MACHINES / name
    return probe(
        root,
        env=fixture_env(root),
        requested=requested,
        memory_budget=memory_budget,
        run_commands=False,
        allow_software_vulkan=allow_software_vulkan,
    )


def command_text(machine: str, name: str) -> str:
    """A captured command output of a fixture machine (``commands/<name>``)."""
    return (MACHINES / machine / "commands" / name).read_text(encoding="utf-8")


def machine_file(machine: str, rel: str) -> str:
    """A file of a fixture machine's tree, e.g. ``proc/meminfo``."""
    return (MACHINES / machine / rel).read_text(encoding="utf-8")


def data_text(name: str) -> str:
    """A captured parser input from ``data/`` (see data/README.md)."""
    return (DATA / name).read_text(encoding="utf-8")

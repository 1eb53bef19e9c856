"""Pure parsers for ``/proc/cpuinfo`` and ``/proc/meminfo``."""

from __future__ import annotations

from dataclasses import dataclass

from app.hardware.units import KIB


@dataclass(frozen=True)
class MemInfo:
    """What ``/proc/meminfo`` says; ``None`` when a line is missing."""

    total_bytes: int | None
    available_bytes: int | None


def parse_cpu_model(text: str) -> str | None:
    """The first ``model name`` of ``/proc/cpuinfo``, e.g. ``AMD RYZEN AI MAX+ 395 w/ ...``."""
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() == "model name" and value.strip():
            return value.strip()
    return None


def parse_meminfo(text: str) -> MemInfo:
    """``MemTotal`` and ``MemAvailable`` in bytes (the file counts in kB, i.e. KiB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or not parts[0].isdigit():
            continue
        scale = KIB if len(parts) > 1 and parts[1].lower() == "kb" else 1
        values[key.strip()] = int(parts[0]) * scale
    return MemInfo(total_bytes=values.get("MemTotal"), available_bytes=values.get("MemAvailable"))

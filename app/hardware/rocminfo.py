"""Pure parser for ``rocminfo`` output: the HSA agents and their memory pools.

A healthy Strix Halo shows a GPU agent ``Name: gfx1151`` whose largest ``GLOBAL`` pool is about
the GTT limit. A pool of about 15.5 GB means an old kernel (ROCm issue #5444); about 62-64 GB is
the default TTM limit (half the RAM).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from app.hardware.units import KIB

_AGENT = re.compile(r"^Agent\s+(\d+)\s*$")
_SIZE = re.compile(r"^(\d+)\(0x[0-9a-fA-F]+\)\s*KB$")


@dataclass(frozen=True)
class RocmAgent:
    name: str
    marketing_name: str
    device_type: str
    #: The largest ``GLOBAL`` segment pool, in bytes.
    pool_bytes: int | None

    @property
    def is_gpu(self) -> bool:
        return self.device_type.upper() == "GPU"


@dataclass(frozen=True)
class RocmInfo:
    kfd_loaded: bool
    agents: tuple[RocmAgent, ...]

    @property
    def gpus(self) -> tuple[RocmAgent, ...]:
        return tuple(agent for agent in self.agents if agent.is_gpu)


def parse_rocminfo(text: str) -> RocmInfo:
    agents: list[dict[str, str | int]] = []
    segment = ""
    for raw in text.splitlines():
        line = raw.strip()
        if _AGENT.match(line):
            agents.append({})
            segment = ""
            continue
        if not agents:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        current = agents[-1]
        if key in ("Name", "Marketing Name", "Device Type"):
            current.setdefault(key, value)
        elif key == "Segment":
            segment = value
        elif key == "Size" and segment.startswith("GLOBAL"):
            size = _SIZE.match(value)
            if size:
                pool = int(size.group(1)) * KIB
                current["pool"] = max(pool, int(current.get("pool", 0)))
    return RocmInfo(
        kfd_loaded="ROCk module" in text and "is loaded" in text,
        agents=tuple(
            RocmAgent(
                name=str(agent.get("Name", "")),
                marketing_name=str(agent.get("Marketing Name", "")),
                device_type=str(agent.get("Device Type", "")),
                pool_bytes=int(agent["pool"]) if "pool" in agent else None,
            )
            for agent in agents
        ),
    )

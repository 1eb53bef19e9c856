"""Fault: a swap storm. Two real models, a memory budget for one, 4 clients each alternating
between them: no 5xx, never two workers alive, the ledger within budget and back to zero
once the idle TTL has passed."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.e2e.server import halo_server
from tests.e2e.test_scheduler_e2e import GEM, SMOL, models_dir, needs
from tests.faults.watch import Watch, workers

# ~1 min on an idle machine, ~10 on a loaded 2-core one (where each load takes ~30 s)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

CLIENTS = 4
ALTERNATIONS = int(os.environ.get("HALO_SWAP_STORM_ROUNDS", "13"))  # per client: 52 in all
TTL = 3.0


def test_swap_storm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = models_dir(tmp_path / "models")
    budget = max(needs(root).values()) + (32 << 20)
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    lock = threading.Lock()

    def client(index: int, base: str) -> None:
        with httpx.Client(timeout=300) as http:
            for i in range(ALTERNATIONS):
                model = (SMOL, GEM)[(index + i) % 2]
                resp = http.post(base + "/chat/completions", json={
                    "model": model, "max_tokens": 2, "temperature": 0,
                    "messages": [{"role": "user", "content": f"client {index} turn {i}"}]})
                with lock:
                    statuses[resp.status_code] += 1
                    if resp.status_code != 200:
                        failures.append(resp.text[:300])

    env = {"HALO_DEFAULT_TTL": str(TTL)}
    with halo_server(root, tmp_path, ["--memory-budget", str(budget)], env=env) as server:
        started = time.monotonic()
        with Watch(server.process.pid, server.url) as watch:
            threads = [threading.Thread(target=client, args=(i, server.base_url))
                       for i in range(CLIENTS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(600)
        storm = time.monotonic() - started
        metrics = httpx.get(server.url + "/metrics", timeout=10).text
        loads = sum(float(line.split()[-1]) for line in metrics.splitlines()
                    if line.startswith("halo_model_loads_total{") and 'result="ok"' in line)
        deadline = time.monotonic() + TTL + 15
        while time.monotonic() < deadline:
            reserved = httpx.get(server.url + "/system", timeout=10).json()["memory"][
                "reserved_bytes"]
            if reserved == 0 and not workers(server.process.pid):
                break
            time.sleep(0.2)
        drained = time.monotonic() - started - storm
        alive_after = len(workers(server.process.pid))
    total = sum(statuses.values())
    with capsys.disabled():
        print(  # noqa: T201
            f"\nswap storm: {CLIENTS} clients x {ALTERNATIONS} alternating requests = {total} "
            f"in {storm:.1f} s; status {dict(statuses)}; {loads:.0f} loads; max workers alive "
            f"{watch.max_workers} ({watch.samples} samples); max reserved "
            f"{watch.max_reserved / 2**20:.0f} MiB of {budget / 2**20:.0f} MiB budget; ledger "
            f"0 and no worker {drained:.1f} s after the storm (TTL {TTL:g} s)")
    assert total == CLIENTS * ALTERNATIONS
    assert not [s for s in statuses if s >= 500], failures[:3]
    assert statuses[200] == total, failures[:3]
    assert watch.max_workers == 1
    assert watch.max_reserved <= budget
    assert reserved == 0
    assert alive_after == 0

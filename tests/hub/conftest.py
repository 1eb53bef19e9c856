"""A fake hub on loopback (tests/hub_fake.py) and the environment the real client needs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from app.hub.remote import HubClient
from tests.hub_fake import FakeHub, fake_hub


def hub_env(home: Path, endpoint: str) -> dict[str, str]:
    return {"HF_ENDPOINT": endpoint, "HF_HOME": str(home), "HF_HUB_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with fake_hub() as server:
        for key, value in hub_env(tmp_path / "hf-home", server.url).items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("HF_TOKEN", raising=False)
        yield server


@pytest.fixture
def client(hub: FakeHub) -> HubClient:
    return HubClient(hub.url)


@pytest.fixture
def src(tmp_path: Path) -> Path:
    """Where test repos' files are written before the hub serves them."""
    path = tmp_path / "hub-files"
    path.mkdir()
    return path

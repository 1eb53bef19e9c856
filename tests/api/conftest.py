from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory


@pytest.fixture
def factory() -> FakeFactory:
    return FakeFactory()


@pytest.fixture
def app(models_dir: Path, factory: FakeFactory, probe_report: ProbeReport) -> FastAPI:
    settings = Settings(models_dir=models_dir, stream_commit_seconds=5)
    return create_app(settings, engine_factory=factory,
                     probe_report=probe_report)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://halo") as c:
            yield c

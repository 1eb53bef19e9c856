"""The API key guards every route that changes state or reveals the machine."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.api.auth import bind_refusal, is_loopback
from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory

pytestmark = pytest.mark.anyio

PUBLIC = {"/health"}  # liveness only: no model names beyond a count, no machine details


@pytest.mark.parametrize("metrics_require_key", [False, True])
async def test_every_route_but_health_needs_the_key(
    models_dir: Path, probe_report: ProbeReport, metrics_require_key: bool
) -> None:
    app = create_app(Settings(models_dir=models_dir, api_keys=["sekrit"],
                              metrics_require_key=metrics_require_key),
                     engine_factory=FakeFactory(), probe_report=probe_report)
    public = PUBLIC | (set() if metrics_require_key else {"/metrics"})
    checked = 0
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://halo") as client:
        for route, methods in app.openapi()["paths"].items():
            if route in public:
                continue
            path = re.sub(r"\{[^}]+\}", "x", route)
            for method in methods:
                resp = await client.request(method, path)
                assert resp.status_code == 401, (method, route, resp.text)
                error = resp.json()["error"]
                if route.startswith("/api/"):  # Ollama's envelope
                    assert "API key" in error
                elif route.startswith("/v1/messages"):  # Anthropic's
                    assert error["type"] == "authentication_error"
                else:
                    assert error["code"] == "invalid_api_key"
                for headers in ({"authorization": "Bearer nope"}, {"x-api-key": "nope"}):
                    wrong = await client.request(method, path, headers=headers)
                    assert wrong.status_code == 401, (method, route)
                checked += 1
        assert checked >= 8
        for path in public:
            assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize(("host", "keys", "insecure", "refused"), [
    ("127.0.0.1", [], False, False),
    ("::1", [], False, False),
    ("localhost", [], False, False),
    ("0.0.0.0", [], False, True),
    ("192.168.1.5", [], False, True),
    ("0.0.0.0", ["k"], False, False),
    ("0.0.0.0", [], True, False),
])
def test_non_loopback_bind_needs_a_key(host: str, keys: list[str], insecure: bool,
                                       refused: bool) -> None:
    settings = Settings(host=host, api_keys=keys, insecure_no_auth=insecure)
    assert (bind_refusal(settings) is not None) == refused
    assert is_loopback(host) == (host in ("127.0.0.1", "::1", "localhost"))

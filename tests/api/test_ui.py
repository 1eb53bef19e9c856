"""The web page's files, its auth gate, its feature detection and the /events snapshot."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api import ui
from app.api.events import snapshot
from app.api.ui import ASSETS, PUBLIC, UI_DIR, has_route
from app.config import Settings
from app.factory import create_app
from app.hardware.probe import ProbeReport
from tests.api.fake_engine import FakeFactory
from tests.api.sse_util import sse_events

pytestmark = pytest.mark.anyio

SMOL = "SmolLM2-135M-Instruct.Q4_1"


def test_the_page_is_small_and_self_contained() -> None:
    files = [p for p in UI_DIR.rglob("*") if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 300_000
    assert {p.name for p in (UI_DIR / "app").iterdir()} == set(ASSETS)
    assert {p.name for p in UI_DIR.iterdir() if p.is_file()} == set(PUBLIC)
    for path in files:
        text = path.read_text()
        # no CDN, no external font or stylesheet: nothing loads from another origin
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?"""
                             r"""(https?:)?//|fonts\.googleapis""", text), path
        if path.suffix == ".js":  # model text never becomes HTML
            assert not re.search(r"innerHTML|outerHTML|insertAdjacentHTML|document\.write"
                                 r"|eval\(|new Function", text), path


async def test_public_files_and_headers(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "script-src 'self' blob:" in csp
    assert "default-src 'none'" in csp
    assert (await client.get("/ui/")).text == page.text
    for name, kind in (("boot.js", "text/javascript"), ("style.css", "text/css"),
                       ("favicon.svg", "image/svg+xml")):
        resp = await client.get(f"/ui/{name}")
        assert resp.status_code == 200, name
        assert resp.headers["content-type"].startswith(kind), name


async def test_config_lists_the_code_in_order(client: httpx.AsyncClient) -> None:
    config = (await client.get("/ui/config")).json()
    assert config["assets"] == [f"/ui/app/{name}" for name in ASSETS]
    assert config["auth"] is False
    assert (await client.get("/ui/auth")).json() == {"required": False}
    for url in config["assets"]:
        resp = await client.get(url)
        assert resp.status_code == 200
        assert "javascript" in resp.headers["content-type"]


@pytest.mark.parametrize("path", ["/ui/app/nope.js", "/ui/app/..%2Fboot.js",
                                  "/ui/app/%2E%2E%2F%2E%2E%2Fconfig.py", "/ui/nope.html"])
async def test_unknown_files_are_404_in_the_envelope(client: httpx.AsyncClient,
                                                     path: str) -> None:
    resp = await client.get(path)
    assert resp.status_code == 404
    assert resp.json()["error"]["type"] == "invalid_request_error"


async def test_optional_endpoints_are_detected_from_the_routes(
        client: httpx.AsyncClient) -> None:
    assert (await client.get("/ui/config")).json()["features"] == {"pull": True, "fit": True}
    bare = FastAPI()  # an app without the hub's routes
    bare.include_router(ui.secured)
    assert not has_route(bare, "POST", "/models/pull")
    assert has_route(bare, "GET", "/ui/config")
    assert not has_route(bare, "POST", "/ui/config")  # the method counts too


async def test_with_keys_only_the_login_form_is_public(
        models_dir: Path, probe_report: ProbeReport) -> None:
    app = create_app(Settings(models_dir=models_dir, api_keys=["k1"]),
                     engine_factory=FakeFactory(), probe_report=probe_report)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://halo") as c:
            for path in ("/", "/ui/boot.js", "/ui/style.css", "/ui/favicon.svg"):
                assert (await c.get(path)).status_code == 200, path
            assert (await c.get("/ui/auth")).json() == {"required": True}
            for path in ("/ui/config", "/ui/app/main.js", "/events"):
                assert (await c.get(path)).status_code == 401, path
            ok = await c.get("/ui/app/main.js", headers={"Authorization": "Bearer k1"})
            assert ok.status_code == 200
            config = await c.get("/ui/config", headers={"Authorization": "Bearer k1"})
            assert config.json()["auth"] is True


async def test_snapshot_counts_what_the_requests_did(app: FastAPI,
                                                     client: httpx.AsyncClient) -> None:
    state = app.state.halo
    before = await snapshot(state)
    assert before["recent"] == []
    assert before["system"]["memory"]["reserved_bytes"] == 0
    resp = await client.post("/v1/chat/completions", json={
        "model": SMOL, "messages": [{"role": "user", "content": "a b c"}], "stream": True,
        "stream_options": {"include_usage": True}})
    usage = sse_events(resp.text)[-2]["usage"]
    after = await snapshot(state)
    row = next(m for m in after["models"] if m["id"] == SMOL)
    assert row["status"] == "loaded"
    assert row["slots_busy"] == 0
    assert row["idle_seconds"] is not None
    assert row["expires_in_seconds"] is not None
    live = row["live"]
    assert live["generation_tokens_total"] == usage["completion_tokens"]
    assert live["prompt_tokens_total"] == usage["prompt_tokens"]
    assert (live["requests_running"], live["requests_waiting"], live["requests_total"]) == (
        0, 0, 1)
    assert live["generation_tokens_per_second"] > 0
    [recent] = after["recent"]
    assert recent["model"] == SMOL
    assert recent["status"] == "ok"
    assert recent["generated_tokens"] == usage["completion_tokens"]
    assert recent["ttft_seconds"] is not None
    assert recent["ttft_seconds"] >= 0
    ledger = after["system"]["memory"]["ledger"]
    assert [r["reserved_bytes"] for r in ledger if r["model"] == SMOL][0] > 0
    assert "probe" not in after["system"]

"""With API keys, the page asks for one; nothing but the login form is served without it."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import open_page
from tests.e2e.conftest import make_models_dir
from tests.e2e.server import Server, halo_server

pytestmark = pytest.mark.e2e

KEY = "sk-browser-test-key"


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser-auth")
    with halo_server(make_models_dir(tmp / "models"), tmp, args=["--api-key", KEY]) as srv:
        yield srv


def test_only_the_login_form_is_served_without_the_key(keyed: Server) -> None:
    for path in ("/", "/ui/", "/ui/boot.js", "/ui/style.css", "/ui/favicon.svg", "/health"):
        assert httpx.get(keyed.url + path).status_code == 200, path
    assert httpx.get(keyed.url + "/ui/auth").json() == {"required": True}
    for path in ("/ui/config", "/ui/app/main.js", "/ui/app/chat.js", "/events", "/system",
                 "/v1/models", "/models/running"):
        resp = httpx.get(keyed.url + path)
        assert resp.status_code == 401, path
        assert resp.json()["error"]["code"] == "invalid_api_key", path
    auth = {"Authorization": f"Bearer {KEY}"}
    assert httpx.get(keyed.url + "/ui/app/main.js", headers=auth).status_code == 200
    with httpx.stream("GET", keyed.url + "/events", headers=auth) as resp:
        assert resp.status_code == 200
        assert next(line for line in resp.iter_lines() if line).startswith("data: {")


def test_the_page_asks_for_the_key_then_works(browser: Browser, keyed: Server) -> None:
    ui = open_page(browser, keyed)
    page = ui.page
    try:
        page.wait_for_selector("#login-form")
        assert page.is_hidden("#app")
        assert page.evaluate("typeof window.Halo") == "undefined"  # no app code yet
        page.fill("#login-key", KEY)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector('#conn[data-state="on"]')  # /events with the key, by fetch
        assert page.is_hidden("#login")
        assert page.locator("#models tbody tr").count() == 2
        page.reload()  # the key is kept for the tab's session
        page.wait_for_selector('#conn[data-state="on"]')
        assert page.is_hidden("#login")
        page.click("#logout")
        page.wait_for_selector("#login-form")
        assert ui.errors.messages == []
    finally:
        page.context.close()


def test_a_wrong_key_is_refused(browser: Browser, keyed: Server) -> None:
    ui = open_page(browser, keyed)
    page = ui.page
    try:
        page.wait_for_selector("#login-form")
        page.fill("#login-key", "wrong")
        page.click("#login-form button[type=submit]")
        page.wait_for_function("() => document.querySelector('#login-error').textContent"
                               ".includes('refused')")
        assert page.is_hidden("#app")
    finally:
        page.context.close()

"""The web page in Debian's chromium, headless, driven by Playwright for Python.

Playwright's own browser download (`playwright install`) is never used: the tests launch
/usr/bin/chromium (Debian package `chromium`). Missing chromium skips these tests outside CI
and fails them in CI (tests/system_tools.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize, sync_playwright

from tests.e2e.conftest import make_models_dir
from tests.e2e.server import Server, halo_server
from tests.system_tools import require_tool

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
DESKTOP: ViewportSize = {"width": 1280, "height": 800}
PHONE: ViewportSize = {"width": 390, "height": 844}
BUDGET = "3GiB"  # small: each test model takes a third of the bar (both fit)


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = require_tool("chromium")  # Debian's /usr/bin/chromium
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # per module, not per session: Playwright's sync API keeps an event loop running in
    # this thread while it is open, and the async (anyio) tests of other modules need it gone
    with chromium() as b:
        yield b


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("browser")
    with halo_server(make_models_dir(tmp / "models"), tmp,
                     args=["--memory-budget", BUDGET, "--preload", "smollm2"]) as srv:
        yield srv


class PageErrors:
    """Console errors and uncaught exceptions of one page."""

    def __init__(self, page: Page) -> None:
        self.messages: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.messages.append(f"uncaught: {exc}"))

    def _console(self, msg: ConsoleMessage) -> None:
        if msg.type == "error":
            self.messages.append(f"console: {msg.text}")


@dataclass
class UI:
    page: Page
    errors: PageErrors
    server: Server


def open_page(browser: Browser, server: Server, viewport: ViewportSize = DESKTOP) -> UI:
    page = browser.new_context(viewport=viewport).new_page()
    page.set_default_timeout(20_000)
    errors = PageErrors(page)
    page.goto(server.url + "/")
    return UI(page, errors, server)


@pytest.fixture
def open_ui(browser: Browser, server: Server) -> Iterator[Callable[[ViewportSize], UI]]:
    """Opens the page at a viewport size; after the test, no page may have logged an error."""
    opened: list[UI] = []

    def open_(viewport: ViewportSize) -> UI:
        opened.append(open_page(browser, server, viewport))
        return opened[-1]

    try:
        yield open_
    finally:
        for one in opened:
            one.page.context.close()
    assert [m for one in opened for m in one.errors.messages] == []


@pytest.fixture
def ui(open_ui: Callable[[ViewportSize], UI]) -> UI:
    """The page at 1280x800, live (its /events stream is connected)."""
    opened = open_ui(DESKTOP)
    opened.page.wait_for_selector('#conn[data-state="on"]')
    return opened

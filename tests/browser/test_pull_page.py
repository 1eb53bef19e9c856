"""Pull from the page: POST /models/pull against a loopback hub (tests/hub_fake.py) with the
real huggingface_hub client in the server; the progress shows and the new model appears in
the models table without a reload (the catalog is live)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import DESKTOP, open_page
from tests.conftest import SMOLLM, _require
from tests.e2e.server import halo_server
from tests.hub.conftest import hub_env
from tests.hub_fake import fake_hub

pytestmark = pytest.mark.e2e


def test_pull_button_downloads_and_lists_the_model(browser: Browser, tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    with fake_hub() as hub:
        hub.add("testorg/SmolLM2-GGUF", _require(SMOLLM))
        env = hub_env(tmp_path / "hf-home", hub.url)
        with halo_server(models, tmp_path, env=env) as server:
            ui = open_page(browser, server, DESKTOP)
            page = ui.page
            try:
                page.wait_for_selector('#conn[data-state="on"]')
                assert page.locator("#models tbody tr").count() == 0
                page.fill("#pull-model", "testorg/SmolLM2-GGUF:Q4_1")
                page.click("#pull-go")
                model = SMOLLM.stem
                page.wait_for_function(
                    "m => document.querySelector('#pull-status').textContent === 'pulled ' + m",
                    arg=model, timeout=120_000)
                size = SMOLLM.stat().st_size
                assert page.eval_on_selector("#pull-progress", "p => [p.value, p.max]") == [
                    size, size]
                page.wait_for_selector(f'#models tr[data-model="{model}"]')
                assert page.inner_text(f'#models tr[data-model="{model}"] .status') == "unloaded"
                assert ui.errors.messages == []
            finally:
                page.context.close()

"""`make screenshot`: docs/screenshot.png, the page of a `halo serve` under load.

Starts halo on the test models, loads both, keeps a few streams going through the OpenAI
API while a playground chat streams in the page, and takes a 1280-wide screenshot.

    python -m tests.browser.screenshot [OUT.png]
"""

from __future__ import annotations

import logging
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from tests.browser.conftest import BUDGET, DESKTOP, chromium, open_page
from tests.e2e.conftest import make_models_dir
from tests.e2e.server import Server, halo_server

log = logging.getLogger("screenshot")

PROMPTS = ["Write a short story about a lighthouse keeper.", "Explain how a heat pump works."]


def background_load(server: Server, stop: threading.Event) -> list[threading.Thread]:
    def stream(model: str, prompt: str) -> None:
        while not stop.is_set():
            body = {"model": model, "messages": [{"role": "user", "content": prompt}],
                    "max_tokens": 24, "stream": True}
            try:
                with httpx.stream("POST", server.base_url + "/chat/completions", json=body,
                                  timeout=60) as resp:
                    for _ in resp.iter_lines():
                        if stop.is_set():
                            break
            except httpx.HTTPError as exc:
                log.warning("background stream failed: %s", exc)
                time.sleep(0.5)

    threads = [threading.Thread(target=stream, args=("smollm2", p), daemon=True)
               for p in PROMPTS]
    threads.append(threading.Thread(target=stream, args=("gemma3-270m", PROMPTS[0]),
                                    daemon=True))
    for t in threads:
        t.start()
    return threads


def take(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with halo_server(make_models_dir(tmp / "models"), tmp,
                         args=["--memory-budget", BUDGET]) as server:
            for model in ("smollm2", "gemma3-270m"):
                httpx.post(server.url + "/models/load", json={"model": model},
                           timeout=120).raise_for_status()
            stop = threading.Event()
            threads = background_load(server, stop)
            try:
                with chromium() as browser:
                    page = open_page(browser, server, DESKTOP).page
                    page.wait_for_selector('#conn[data-state="on"]')
                    page.select_option("#chat-model", "smollm2")
                    page.fill("#chat-max", "48")
                    page.fill("#chat-input", "Write a haiku about memory, then show it "
                              "as a Python string in a code block.")
                    page.click("#chat-send")
                    try:  # finished, or still streaming on a slow machine: either shows
                        page.wait_for_selector('.msg.assistant[data-state="done"]',
                                               timeout=120_000)
                    except PlaywrightTimeout:
                        log.warning("the playground answer is still streaming")
                    try:  # some finished requests in the Live table
                        page.wait_for_selector("#recent tbody tr[data-model]", timeout=60_000)
                    except PlaywrightTimeout:
                        log.warning("no request has finished yet")
                    time.sleep(2)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(out), full_page=True)
            finally:
                stop.set()
                for t in threads:
                    t.join(timeout=30)
    log.info("wrote %s", out)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    take(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshot.png"))

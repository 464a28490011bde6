"""The demo chat server in a real browser: Debian's headless Chromium driven by Playwright.

Never `playwright install` (no network): the test uses the system's `/usr/bin/chromium`
(`apt-get install chromium`; `./dev test` and `.ci/run` install it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import skip_or_fail
from tests.integration.test_chat_server import ChatServerProcess

pytestmark = pytest.mark.slow
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
MODULES = ("dice", "wordfilter", "stats", "greeter", "linkpreview", "hostile")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ChatServerProcess]:
    proc = ChatServerProcess(tmp_path / "data")
    proc.wait_ready()
    yield proc
    proc.stop()


def test_chat_page_rolls_dice_and_admin_panel_shows_every_module(
    server: ChatServerProcess, tmp_path: Path
) -> None:
    if not os.access(CHROMIUM, os.X_OK):
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 800})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))

            page.goto(server.url)
            page.fill("#name", "pat")
            page.click("#join")
            expect(page.locator("#log")).to_contain_text("You joined #general.")
            expect(page.locator("#log")).to_contain_text("Welcome to #general, pat!")
            page.fill("#text", "/roll 1d6")
            page.press("#text", "Enter")
            answer = page.locator(".msg.bot", has_text="pat rolled 1d6")
            expect(answer).to_have_count(1)
            assert answer.inner_text().split(": ")[-1].strip() in {"1", "2", "3", "4", "5", "6"}
            page.fill("#text", "what the heck")
            page.press("#text", "Enter")
            expect(page.locator(".msg.message").last).to_contain_text("what the h**k")
            page.screenshot(path=str(tmp_path / "chat.png"))

            page.goto(server.url + "admin")
            for name in MODULES:
                expect(page.locator(f"#module-{name} .state")).to_have_count(1)
            expect(page.locator("#module-dice .state")).to_have_text("ACTIVE")
            expect(page.locator("#module-linkpreview .state")).to_have_text("REFUSED")
            expect(page.locator("#module-linkpreview")).to_contain_text("missing network_access")
            # The hostile module exhausts its restart budget within seconds: visibly FAILED.
            expect(page.locator("#module-hostile .state")).to_have_text("FAILED", timeout=40_000)
            expect(page.locator("#module-hostile")).to_contain_text("watchdog:memory_mb")
            expect(page.locator("#probe-list")).to_contain_text("fork bomb")

            page.fill("#token", server.token)
            page.click("#token-form button")
            page.click("#module-wordfilter button[data-action=pause]")
            expect(page.locator("#module-wordfilter .state")).to_have_text("PAUSED")
            page.click("#module-wordfilter button[data-action=resume]")
            expect(page.locator("#module-wordfilter .state")).to_have_text("ACTIVE")

            states = {name: page.locator(f"#module-{name} .state").inner_text() for name in MODULES}
            assert states == {
                "dice": "ACTIVE",
                "wordfilter": "ACTIVE",
                "stats": "ACTIVE",
                "greeter": "ACTIVE",
                "linkpreview": "REFUSED",
                "hostile": "FAILED",
            }
            page.screenshot(path=str(tmp_path / "admin.png"), full_page=True)
            assert errors == [], errors
        finally:
            browser.close()
    assert (tmp_path / "chat.png").stat().st_size > 10_000
    assert (tmp_path / "admin.png").stat().st_size > 10_000
    print(f"screenshots: {tmp_path / 'chat.png'} {tmp_path / 'admin.png'}")

"""End-to-end fixtures: the real app on uvicorn (127.0.0.1, free port) and a real Chromium."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import playwright.sync_api as playwright_sync  # missing: a failure, never a skip
import pytest

from callcenter.config import Config
from callcenter.demo import DEMO_PASSWORD
from tests.e2e.server import LiveServer, with_demo_base

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    # Module scope, not session: Playwright's sync API keeps an event loop running in the main
    # thread while it is started, which would break the async tests collected after e2e/.
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is not installed: run `make test` (it apt-installs chromium)")
    with playwright_sync.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def live_server(config: Config) -> Iterator[Callable[..., LiveServer]]:
    """Factory: ``live_server(configure=..., before=...)`` starts the app; all are stopped
    at the end of the test."""
    started: list[LiveServer] = []

    def start(**kwargs: Any) -> LiveServer:
        configure = kwargs.pop("configure", None)

        def setup(app: Any) -> None:
            with_demo_base(app)
            if configure is not None:
                configure(app)

        server = LiveServer(config, demo=False, configure=setup, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server()


class Console:
    """One user's browser tab: logs in through the form and records what a script did."""

    def __init__(self, browser: Any, server: LiveServer, login: str) -> None:
        self.server = server
        self.context = browser.new_context(viewport={"width": 1400, "height": 900},
                                           locale="en-US")
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.errors: list[str] = []
        self.page.on("dialog", self._dialog)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(server.url + "/")
        assert "/login" in self.page.url
        self.page.fill("#login", login)
        self.page.fill("#password", DEMO_PASSWORD)
        self.page.click("#login-form button[type=submit]")
        self.page.wait_for_selector("body[data-ready=true]", timeout=10_000)
        self.wait_online()

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def wait_online(self) -> None:
        self.page.wait_for_selector("#conn[data-state=online]", timeout=10_000)

    def card(self, call_id: str) -> Any:
        return self.page.locator(f'.card[data-call-id="{call_id}"]')

    def entry_types(self, call_id: str) -> list[str]:
        script = "(id) => (window.callcenterConsole.store.get(id) || {types: []}).types"
        return self.page.evaluate(script, call_id)

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def console(browser: Any) -> Iterator[Callable[[LiveServer, str], Console]]:
    opened: list[Console] = []

    def open_console(server: LiveServer, login: str) -> Console:
        c = Console(browser, server, login)
        opened.append(c)
        return c

    yield open_console
    for c in opened:
        assert not c.errors, c.errors  # no uncaught script error in any tab
        c.close()

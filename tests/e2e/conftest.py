"""Real-browser tests: Debian's Chromium driven by Playwright against a live server on loopback.

Skipped when Playwright or /usr/bin/chromium is missing (.ci/run installs both); screenshots of
every page visited are kept under test-artifacts/screenshots/ for people to look at.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from shop.demo import seed_demo
from tests.conftest import make_test_app

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: .ci/run should have installed Debian's chromium")
        pytest.skip(f"{CHROMIUM} not installed (apt-get install chromium)")
    with playwright_api.sync_playwright() as p:
        # Never `playwright install`: use the distribution's browser; keep it off the network.
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield browser
        browser.close()


class LiveServer:
    def __init__(self, app):
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.app.extensions["shop.db"].dispose()


@pytest.fixture
def live_app_config():
    """Extra settings for the live app; tests override this fixture to switch features on."""
    return {}


@pytest.fixture
def live_server(db_url, tmp_path, live_app_config):
    app = make_test_app(db_url, tmp_path / "instance", **live_app_config)
    seed_demo(app.extensions["shop.db"], app.extensions["shop.settings"])
    server = LiveServer(app)
    yield server
    server.stop()


@pytest.fixture
def screenshot(request):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    test_name = request.node.name.replace("[", "-").replace("]", "")

    def take(page, name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{test_name}-{name}.png"), full_page=True)

    return take


@pytest.fixture
def third_party_requests():
    """Collects every request a page makes to a host other than loopback."""
    return []


def watch_requests(page, collected: list[str]) -> None:
    def on_request(request) -> None:
        url = request.url
        if not (
            url.startswith("http://127.0.0.1")
            or url.startswith("data:")
            or url.startswith("about:")
        ):
            collected.append(url)

    page.on("request", on_request)

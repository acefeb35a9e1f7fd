"""A real Stackyard server and a real headless Chromium for the dashboard tests.

``live_server`` runs ``create_app`` under uvicorn on a free loopback port in a
background thread, on a fresh SQLite database, with the real captures from
``tests/data`` pushed through ``POST /api/v1/ingest`` at times within the last
hour (so the page's default range shows them). ``browser`` is Debian's
``chromium`` driven by Playwright; Playwright never downloads a browser here.
A missing ``chromium`` or ``playwright`` skips the tests (fails under
``STACKYARD_STRICT=1``) through :func:`tests.support.tools.missing`.
"""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import uvicorn

from server.app import create_app
from server.migrate import upgrade
from server.network.proxies import uvicorn_proxy_options
from server.settings import Settings
from tests.support.tools import DATA, missing

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, ConsoleMessage, Page

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# (file, service, labels, minutes before now): two instances of demo, the slow demo, and snapshots.
CAPTURES: list[tuple[str, str, dict[str, str], int]] = [
    ("cpu.pb.gz", "demo", {"instance": "demo-1", "env": "test"}, 40),
    ("cpu2.pb.gz", "demo", {"instance": "demo-2", "env": "test"}, 25),
    ("cpu_slow.pb.gz", "demo-slow", {"instance": "slow-1", "env": "test"}, 40),
    ("heap.pb.gz", "demo", {"instance": "demo-1", "env": "test"}, 30),
    ("goroutine.pb.gz", "demo", {"instance": "demo-1", "env": "test"}, 30),
]


@dataclass
class LiveServer:
    url: str
    ingested: list[dict[str, Any]] = field(default_factory=list)

    def get(self, path: str, **params: str) -> Any:
        """GET a JSON endpoint of the live server (what the page itself asks for)."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
            return json.loads(response.read())

    def post(self, path: str, body: bytes, params: list[tuple[str, str]]) -> Any:
        request = urllib.request.Request(f"{self.url}{path}?{urllib.parse.urlencode(params)}", data=body, method="POST")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 201, response.status
            return json.loads(response.read())


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serving(database_url: str, build: Callable[[Settings], Any] | None = None, **settings: Any) -> Iterator[LiveServer]:
    """Serve ``create_app`` on a free port (a fresh, migrated database) while the context lasts.

    ``build`` makes the app from the settings instead (``stackyard.runtime.build_server``: with the
    in-process scraper); ``settings`` are extra ``Settings`` fields.
    """
    upgrade(database_url)
    config = Settings(database_url=database_url, retention_raw="36500d", **settings)
    app = build(config) if build else create_app(config)
    sock = free_socket()
    port = sock.getsockname()[1]
    proxies = uvicorn_proxy_options(config)  # as `stackyard serve` runs it: forwarded headers from nobody by default
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", **proxies))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield LiveServer(f"http://127.0.0.1:{port}")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def ingest_captures(live: LiveServer) -> None:
    now = int(time.time())
    for name, service, labels, minutes_ago in CAPTURES:
        params = [("service", service), ("time", str(now - minutes_ago * 60))]
        params += [("label", f"{k}={v}") for k, v in labels.items()]
        live.ingested.append(live.post("/api/v1/ingest", (DATA / name).read_bytes(), params))


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    database = tmp_path_factory.mktemp("web") / "stackyard.db"
    with serving(f"sqlite:///{database}") as live:
        ingest_captures(live)
        yield live


def chromium_path() -> str | None:
    return CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")


def launch(playwright: Any, user_data_dir: Path, **options: Any) -> BrowserContext:
    """Debian's Chromium, headless, offline-quiet, in a fresh profile directory; ``options`` such as
    ``timezone_id`` go to Playwright's context."""
    context: BrowserContext = playwright.chromium.launch_persistent_context(
        str(user_data_dir),
        executable_path=chromium_path() or CHROMIUM,
        headless=True,
        args=CHROMIUM_ARGS,
        viewport={"width": 1440, "height": 1000},
        device_scale_factor=1,
        **options,
    )
    return context


def require_browser() -> None:
    if not chromium_path():
        missing("chromium is not installed (apt-get install chromium, or scripts/install-tools.sh as root)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing("playwright is not installed (.venv/bin/pip install playwright)")


@pytest.fixture(scope="module")
def browser() -> Iterator[BrowserContext]:
    require_browser()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="stackyard-chromium-") as profile, sync_playwright() as playwright:
        context = launch(playwright, Path(profile))
        try:
            yield context
        finally:
            context.close()


@dataclass
class BrowserPage:
    """A page plus everything it complained about: console errors and uncaught exceptions."""

    page: Page
    errors: list[str] = field(default_factory=list)

    def on_console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"console: {message.text}")


@pytest.fixture
def browser_page(browser: BrowserContext) -> Iterator[BrowserPage]:
    page = browser.new_page()
    watched = BrowserPage(page)
    page.on("console", watched.on_console)
    page.on("pageerror", lambda exc: watched.errors.append(f"pageerror: {exc}"))
    try:
        yield watched
    finally:
        page.close()

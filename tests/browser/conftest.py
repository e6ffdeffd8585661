"""Browser tests: the hub served by uvicorn on 127.0.0.1, driven by Playwright in Debian's
Chromium (``/usr/bin/chromium``; no browser download). Without Chromium they skip, except
in CI, where ``.ci/run`` installs it and its absence is a failure."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from fastapi import FastAPI

from hub.api import create_app
from tests.api.conftest import Api, make_api  # noqa: F401  (the app fixture)

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """An app served on 127.0.0.1 by uvicorn in a thread; yields its base URL."""
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(400):  # up to 20 s on a busy machine
        if server.started:
            break
        threading.Event().wait(0.05)
    assert server.started, "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


@pytest.fixture
def served(make_api: Callable[..., Api]) -> Iterator[tuple[Api, str]]:  # noqa: F811
    """The app over a fresh database, served on 127.0.0.1 by uvicorn in a thread."""
    api = make_api()
    with serve(create_app(api.rt)) as base:
        yield api, base


@pytest.fixture
def browser_page() -> Iterator[object]:
    """A Playwright page in headless Chromium (the system's, by executable path)."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-dev-shm-usage"])
        context = browser.new_context(viewport={"width": 1366, "height": 900})
        page = context.new_page()
        page.set_default_timeout(20_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    """Where screenshots go: docs/screenshots with MSPHUB_TEST_SCREENSHOTS=1, else a temp dir."""
    wanted = os.environ.get("MSPHUB_TEST_SCREENSHOTS")
    target = REPO / "docs" / "screenshots" if wanted else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target

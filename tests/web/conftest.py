"""Fixtures for the web tests: an app over a fixed Board, and one headless Chromium for the whole session."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest

with warnings.catch_warnings():
    # Starlette 1.x nudges towards httpx2; the httpx-based TestClient is what this project installs.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient
from web_builders import ZONE

from backup_glance.board import BoardStore
from backup_glance.config import Config, ServerConfig
from backup_glance.model import Board
from backup_glance.web import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]

ClientFactory = Callable[..., TestClient]


@pytest.fixture
def client_for() -> ClientFactory:
    """`client_for(board, token=None, base_url=None, demo_note=None)` -> TestClient over a fresh app."""

    def make(
        board: Board, *, token: str | None = None, base_url: str | None = None, demo_note: str | None = None
    ) -> TestClient:
        server = ServerConfig(auth_token=token, base_url=base_url)
        config = Config(timezone=ZONE, server=server)
        return TestClient(create_app(config, BoardStore(board), demo_note=demo_note))

    return make


@pytest.fixture(scope="module")  # module, not session: Playwright's loop must be gone before other tests run
def browser() -> Iterator[Any]:
    if not shutil.which(CHROMIUM):
        # The Makefile's check-system-deps installs it in CI; locally, as root, do the same.
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=False, capture_output=True)
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is not installed (make test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()

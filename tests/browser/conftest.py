"""A real browser for the pages: Debian's chromium, driven headless by Playwright.

Playwright's own browser downloads are never used (`executable_path` points at the system
chromium, which .ci/run installs). Without chromium the browser tests skip locally and fail in CI.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, Route, async_playwright

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    """A headless chromium for one test."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed (.ci/run installs Debian's package)")
        pytest.skip("chromium is not installed: apt-get install -y chromium")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def output_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where a browser test leaves its screenshots: HOMEFEED_TEST_OUTPUT if set, else a pytest temp dir."""
    root = os.environ.get("HOMEFEED_TEST_OUTPUT")
    base = Path(root) if root else Path(tmp_path_factory.getbasetemp()) / "browser-output"
    name: str = request.node.name
    target = base / name
    target.mkdir(parents=True, exist_ok=True)
    return target


async def offline_page(browser: Browser, base_url: str) -> tuple[Page, list[str]]:
    """A page that may reach only the app at base_url; every other request is aborted and listed."""
    page = await browser.new_page()
    blocked: list[str] = []

    async def only_the_app(route: Route) -> None:
        url = route.request.url
        if url.startswith(base_url + "/") or url == base_url:
            await route.continue_()
        else:
            blocked.append(url)
            await route.abort("internetdisconnected")

    await page.route("**/*", only_the_app)
    return page, blocked

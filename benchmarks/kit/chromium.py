"""Debian's Chromium through Playwright, with the demo page in it: the browser tests' and the benches' viewer.

Playwright comes with the `test` extra; it is imported when a browser is launched, so the benches
that need no browser run without it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--autoplay-policy=no-user-gesture-required",
]
CONNECT_TIMEOUT_MS = 15_000


class ChromiumMissing(RuntimeError):
    pass


@asynccontextmanager
async def chromium(*extra_flags: str) -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        raise ChromiumMissing(f"Chromium is needed at {CHROMIUM}: apt-get install chromium")
    try:
        from playwright.async_api import async_playwright
    except ImportError as exc:
        raise ChromiumMissing("Playwright is needed to drive Chromium: pip install 'lipstream[test]'") from exc
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*FLAGS, *extra_flags])
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Browser, url: str, **context: Any) -> tuple[Page, list[str]]:
    """A fresh page whose script errors are collected (any of them fails a test)."""
    page = await (await browser.new_context(**context)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    return page, errors


async def connect(page: Page) -> None:
    """The demo page's Connect, until its session is up."""
    await page.click("#connect:not([disabled])")
    await page.wait_for_selector("body[data-state=connected]", timeout=CONNECT_TIMEOUT_MS)

"""Debian's Chromium through Playwright, and the demo page in it, for the browser tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright

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
INBOUND_VIDEO = """async () => {
  const report = await window.lipstream.pc.getStats();
  let video = null;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') video = s; });
  if (!video) return null;
  return {codec: video.codecId ? report.get(video.codecId).mimeType : '', frames: video.framesDecoded ?? 0,
          keyframes: video.keyFramesDecoded ?? 0, freezes: video.freezeCount ?? 0, at: performance.now() / 1000};
}"""


@asynccontextmanager
async def chromium(*extra_flags: str) -> AsyncIterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is needed at {CHROMIUM} for the browser test: apt-get install chromium")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=[*FLAGS, *extra_flags])
        try:
            yield browser
        finally:
            await browser.close()


async def open_page(browser: Browser, url: str, **context: object) -> tuple[Page, list[str]]:
    """A fresh page whose script errors are collected (any of them fails the test)."""
    page = await (await browser.new_context(**context)).new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    return page, errors


async def connect(page: Page) -> None:
    await page.click("#connect:not([disabled])")
    await page.wait_for_selector("body[data-state=connected]", timeout=15_000)

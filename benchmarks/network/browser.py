"""Chromium as the network bench's viewer: the demo page connects across the shaped link, and the browser counts.

Chromium decodes and shows the frames with its own jitter buffer, loss recovery (NACK, PLI) and
estimate (REMB), as a user's browser would. A script in the page records when each new video frame
is presented (requestVideoFrameCallback) and samples the receiver's getStats() twice a second; the
page's clock (performance.now) is mapped onto the bench's event-loop clock once, at connection.
Chromium leaves loopback and local addresses out of WebRTC, or hides them behind mDNS names, unless told.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from benchmarks.kit.chromium import connect, open_page

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

CHROMIUM_FLAGS = ("--allow-loopback-in-peer-connection", "--disable-features=WebRtcHideLocalIpsWithMdns")
STATS_INTERVAL_MS = 500

WATCH = f"""() => {{
  const watch = {{presented: [], stats: []}};
  window.lipstreamWatch = watch;
  const video = document.querySelector('#video');
  const onFrame = (now, meta) => {{
    watch.presented.push([now / 1000, meta.presentedFrames]);
    video.requestVideoFrameCallback(onFrame);
  }};
  video.requestVideoFrameCallback(onFrame);
  const sample = async () => {{
    const pc = window.lipstream.pc;
    if (!pc) return;
    const report = await pc.getStats();
    const row = {{t: performance.now() / 1000}};
    report.forEach((s) => {{
      if (s.type !== 'inbound-rtp') return;
      if (s.kind === 'video') {{
        Object.assign(row, {{frames: s.framesDecoded ?? 0, keyframes: s.keyFramesDecoded ?? 0}});
      }} else if (s.kind === 'audio') {{
        Object.assign(row, {{audio_received: s.packetsReceived ?? 0, audio_lost: s.packetsLost ?? 0}});
      }}
    }});
    watch.stats.push(row);
  }};
  setInterval(sample, {STATS_INTERVAL_MS});
}}"""
SESSION = "() => { const s = window.lipstream.session; return {id: s.id, auth: s.auth}; }"


class PageError(RuntimeError):
    """The page's script failed, or it did not connect."""


@dataclass(frozen=True)
class PageSession:
    """The page's session, to control it over HTTP as the page does, and the page's clock."""

    base: str
    session_id: str
    headers: dict[str, str]
    clock_offset: float  # the bench's event-loop clock less the page's performance.now(), in seconds

    def auth(self) -> dict[str, str]:
        return self.headers


@dataclass
class PageCounts:
    """What Chromium counted, on the bench's clock."""

    presented: list[tuple[float, int]] = field(default_factory=list)  # time, presentedFrames
    stats: list[dict[str, float]] = field(default_factory=list)  # t and the inbound streams' counters


@asynccontextmanager
async def watching_page(browser: Browser, url: str) -> AsyncIterator[tuple[Page, PageSession]]:
    """The demo page at `url`, connected and counting; disconnected (its session deleted) and closed after."""
    page, errors = await open_page(browser, url)
    try:
        try:
            await connect(page)
        except Exception as exc:  # noqa: BLE001 - Playwright's timeout: say what the page showed
            shown = await page.evaluate("() => document.querySelector('#message').textContent")
            raise PageError(f"the demo page did not connect: {shown or exc} (script errors: {errors})") from exc
        await page.evaluate(WATCH)
        session = await page.evaluate(SESSION)
        loop = asyncio.get_running_loop()
        before = loop.time()
        page_now = await page.evaluate("() => performance.now() / 1000")
        offset = (before + loop.time()) / 2 - page_now
        yield page, PageSession(url, session["id"], session["auth"], offset)
        if errors:
            raise PageError(f"the demo page's script failed: {errors}")
    finally:
        with contextlib.suppress(Exception):  # a page that is already gone has nothing to hang up
            await page.evaluate("() => window.lipstream.disconnect()")
        await page.context.close()


async def page_counts(page: Page, session: PageSession) -> PageCounts:
    collected: dict[str, Any] = await page.evaluate("() => window.lipstreamWatch")
    offset = session.clock_offset
    return PageCounts(
        [(t + offset, int(n)) for t, n in collected["presented"]],
        [{**row, "t": row["t"] + offset} for row in collected["stats"]],
    )

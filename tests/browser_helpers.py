"""Debian's Chromium through Playwright, and the demo page in it, for the browser tests (`benchmarks.kit.chromium`)."""

from __future__ import annotations

from benchmarks.kit.chromium import chromium, connect, open_page

__all__ = ["INBOUND_VIDEO", "chromium", "connect", "open_page"]

INBOUND_VIDEO = """async () => {
  const report = await window.lipstream.pc.getStats();
  let video = null;
  report.forEach((s) => { if (s.type === 'inbound-rtp' && s.kind === 'video') video = s; });
  if (!video) return null;
  return {codec: video.codecId ? report.get(video.codecId).mimeType : '', frames: video.framesDecoded ?? 0,
          keyframes: video.keyFramesDecoded ?? 0, freezes: video.freezeCount ?? 0, at: performance.now() / 1000};
}"""

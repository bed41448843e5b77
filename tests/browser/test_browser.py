"""The demo page in a real Chromium against a real edge: what a person sees first must work.

Connect shows the avatar over H.264, an uploaded file moves its mouth, the latency
overlay shows live numbers, failures are explained in words, echo mode speaks the
microphone, and Disconnect frees the session on the server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import cv2
import numpy as np
import pytest
from browser_helpers import INBOUND_VIDEO, chromium, connect, open_page
from edge_helpers import RunningEdge, running_edge, until
from playwright.async_api import Page, expect

from benchmarks.kit import speech

FAKE_MICROPHONE = "--use-fake-device-for-media-stream"
DESKTOP = {"width": 1280, "height": 860}
PHONE = {"width": 390, "height": 844}
ARTIFACT = Path(__file__).resolve().parents[1] / "artifacts" / "browser-speaking.png"
# The bundled avatar's mouth, as fractions of the frame (x0, x1, y0, y1), found by diffing idle and speaking frames.
MOUTH_BOX = (0.36, 0.48, 0.28, 0.36)
# Long enough that the interrupt below still finds speech queued after the screenshots, which take
# seconds on a busy 2-core machine.
SPEECH_SECONDS = 10.0

DROP_TEXT_FILE = """() => {
  const data = new DataTransfer();
  data.items.add(new File(['shopping list: eggs, milk'], 'notes.txt', {type: 'text/plain'}));
  document.getElementById('dropzone').dispatchEvent(
    new DragEvent('drop', {dataTransfer: data, bubbles: true, cancelable: true}));
}"""

# Chromium hides its host addresses behind mDNS names, and aioice resolves them under a process-wide
# asyncio.Lock that binds to the first event loop using it: these tests share one loop, as a server does.
pytestmark = pytest.mark.asyncio(loop_scope="module")


# -- helpers ---------------------------------------------------------------------------------
def gray(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_GRAYSCALE).astype(np.float32)


def mouth_motion(shot: np.ndarray, reference: np.ndarray) -> float:
    """Mean change in the mouth box once the idle loop's head motion (a global affine move) is undone."""
    h, w = reference.shape
    shot = cv2.resize(shot, (w, h))
    half = (w // 2, h // 2)
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-4)
    _, warp = cv2.findTransformECC(
        cv2.resize(reference, half), cv2.resize(shot, half), warp, cv2.MOTION_AFFINE, criteria, None, 5
    )
    warp[:, 2] *= 2
    aligned = cv2.warpAffine(shot, warp, (w, h), flags=cv2.INTER_LINEAR + cv2.WARP_INVERSE_MAP)
    x0, x1, y0, y1 = MOUTH_BOX
    box = (slice(int(y0 * h), int(y1 * h)), slice(int(x0 * w), int(x1 * w)))
    return float(np.abs(aligned[box] - reference[box]).mean())


async def metric(page: Page, name: str) -> str:
    return (await page.text_content(f'[data-metric="{name}"]') or "").strip()


def number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


async def server_sessions(edge: RunningEdge) -> int:
    return len(edge.edge.sessions)


# -- tests -------------------------------------------------------------------------------------
async def test_page_plays_h264_speaks_an_upload_and_shows_live_latency() -> None:
    wav = speech.encode(speech.voiced_bursts(SPEECH_SECONDS))
    async with running_edge() as edge, chromium() as browser:
        page, errors = await open_page(browser, edge.url, viewport=DESKTOP)
        await connect(page)
        assert len(edge.edge.sessions) == 1

        # The avatar plays at once: H.264 frames decoded, and more of them a moment later.
        first = await until(
            lambda: page.evaluate(INBOUND_VIDEO), lambda v: v is not None and v["frames"] > 0, "decoded video frames"
        )
        assert first["codec"].lower() == "video/h264"
        await until(
            lambda: page.evaluate(INBOUND_VIDEO),
            lambda v: v["frames"] >= first["frames"] + 10,
            "the decoded frame count to grow",
        )

        # The overlay shows the browser's and the server's numbers, live.
        assert await page.is_visible("#overlay")
        await until(lambda: metric(page, "codec"), lambda text: "H264" in text, "the codec in the overlay")
        await until(lambda: metric(page, "fps"), lambda text: (number(text) or 0) > 0, "a frame rate in the overlay")
        # The idle session sends the avatar's shared idle loop: it encodes nothing itself, and says so.
        await until(lambda: metric(page, "server_encode"), lambda text: text == "shared loop", "the shared loop")

        # "L" hides the overlay, so the video alone is compared while idle and while speaking.
        await page.keyboard.press("l")
        assert await page.is_hidden("#overlay")
        video = page.locator("#video")
        idle = [gray(await video.screenshot()) for _ in range(4)]
        reference = idle[0]
        idle_motion = max(mouth_motion(shot, reference) for shot in idle[1:])

        for name in ("speech-1.wav", "speech-2.wav"):  # two utterances queue back to back
            await page.set_input_files("#speech-file", files=[{"name": name, "mimeType": "audio/wav", "buffer": wav}])
        await page.wait_for_selector("body[data-speaking=true]", timeout=5_000)
        # Speaking, the session encodes its own frames: the overlay shows how long that takes, live.
        encode = await until(
            lambda: metric(page, "server_encode"), lambda text: text.endswith(" ms"), "the session's own encode time"
        )
        await until(lambda: metric(page, "server_encode"), lambda text: text != encode, "the encode time to update")
        speaking_motion = max([mouth_motion(gray(await video.screenshot()), reference) for _ in range(6)])
        assert speaking_motion > 2.5 * idle_motion, (idle_motion, speaking_motion)

        # The overlay comes back with "L"; keep the page shot where the mouth is open widest.
        await page.keyboard.press("L")
        assert await page.is_visible("#overlay")
        box = await video.bounding_box()
        assert box is not None
        rows = slice(round(box["y"]), round(box["y"] + box["height"]))
        columns = slice(round(box["x"]), round(box["x"] + box["width"]))
        best = (-1.0, b"")
        for _ in range(3):
            png = await page.screenshot()
            best = max(best, (mouth_motion(gray(png)[rows, columns], reference), png))
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        ARTIFACT.write_bytes(best[1])
        assert (number(await metric(page, "speech_to_lips_ms")) or 0) > 0

        # Interrupt drops the rest at once, on the server and in the page.
        session = next(iter(edge.edge.sessions.values()))
        assert session.queued_seconds() > 1
        await page.click("#interrupt")
        await page.locator("#events li", has_text="interrupt: dropped").wait_for()
        assert not session.speaking and session.queued_seconds() == 0
        await page.wait_for_selector("body[data-speaking=false]", timeout=2_000)
        await until(lambda: metric(page, "server_encode"), lambda text: text == "shared loop", "the loop again", 3)

        # Disconnect frees the session on the server.
        await page.click("#connect")
        await page.wait_for_selector("body[data-state=idle]")
        await until(lambda: server_sessions(edge), lambda count: count == 0, "the server to release the session")
        assert errors == []


async def test_say_box_speaks_text_and_the_overlay_tells_queued_time_apart() -> None:
    async with running_edge() as edge, chromium() as browser:
        page, errors = await open_page(browser, edge.url, viewport=DESKTOP)
        await until(lambda: page.is_enabled("#voice"), bool, "the voice list")
        voices = await page.eval_on_selector_all("#voice option", "options => options.map((o) => o.value)")
        assert {"en-us", "en-us+f3", "de"} <= set(voices)
        assert await page.input_value("#voice") == "en-us" and await page.is_disabled("#say")
        await connect(page)

        await page.fill("#say-text", "Hello. I say what you type, as soon as it is synthesized.")
        await page.select_option("#voice", "en-us+f3")
        await page.click("#say")
        await page.click("#say")  # the same again, queued behind the first
        await page.wait_for_selector("body[data-speaking=true]", timeout=5_000)
        await page.locator("#events li", has_text="in en-us+f3 (espeak-ng)").first.wait_for()
        # The second utterance waited behind the first: that is queued time, not latency.
        await until(lambda: metric(page, "queued_ms"), lambda text: (number(text) or 0) > 1000, "queued time", 15)
        latency = number(await metric(page, "speech_to_lips_ms"))
        assert latency is not None and 0 < latency < 1000, latency
        assert len(edge.edge.sessions) == 1
        await page.locator("#events li", has_text="after").first.wait_for()  # the log says it was queued
        assert errors == []


async def test_idle_speech_idle_decodes_at_pace_without_a_freeze() -> None:
    """The session switches from the shared idle loop to its own encoder and back: Chromium sees one stream."""
    wav = speech.encode(speech.voiced_bursts(3.0))
    async with running_edge() as edge, chromium() as browser:
        page, errors = await open_page(browser, edge.url, viewport=DESKTOP)
        await connect(page)
        await until(lambda: metric(page, "server_encode"), lambda text: text == "shared loop", "the shared loop", 10)
        before = await page.evaluate(INBOUND_VIDEO)
        await page.set_input_files("#speech-file", files=[{"name": "s.wav", "mimeType": "audio/wav", "buffer": wav}])
        await page.wait_for_selector("body[data-speaking=true]", timeout=5_000)
        await page.wait_for_selector("body[data-speaking=false]", timeout=10_000)
        await until(lambda: metric(page, "server_encode"), lambda text: text == "shared loop", "the loop again", 3)
        await asyncio.sleep(1.0)
        after = await page.evaluate(INBOUND_VIDEO)
        seconds = after["at"] - before["at"]
        assert after["frames"] - before["frames"] >= 0.8 * 25 * seconds, (before, after)
        assert after["freezes"] == before["freezes"], (before, after)
        assert after["keyframes"] - before["keyframes"] <= seconds + 2, "no keyframe storm"
        assert errors == []


async def test_page_explains_failures_in_words() -> None:
    no_tts = {"espeak": {"program": "/nonexistent/espeak-ng"}}
    async with running_edge(sessions={"max_sessions": 1}, tts=no_tts) as edge, chromium(FAKE_MICROPHONE) as browser:
        page, errors = await open_page(browser, f"{edge.url}/?avatar=nobody", viewport=PHONE)
        # No engine to speak text: the page says what the server needs, and offers no Say.
        await expect(page.locator("#say-status")).to_contain_text("Text to speech is off on this server")
        await expect(page.locator("#say-status")).to_contain_text("apt-get install espeak-ng")
        assert await page.is_disabled("#say")
        await page.click("#connect:not([disabled])")
        await expect(page.locator("#message")).to_contain_text("no such avatar 'nobody'")
        assert await page.get_attribute("body", "data-state") == "error"

        # Headless Chromium refuses the microphone without a grant.
        await page.click("#mic")
        await expect(page.locator("#message")).to_contain_text("microphone blocked by the browser")
        assert await page.get_attribute("#mic", "aria-pressed") == "false"

        # The only slot taken, the next viewer is told to come back later, and when.
        holder, _ = await open_page(browser, edge.url, viewport=DESKTOP)
        await connect(holder)
        late, _ = await open_page(browser, edge.url, viewport=DESKTOP)
        await late.click("#connect:not([disabled])")
        await expect(late.locator("#message")).to_contain_text("server full")
        await expect(late.locator("#message")).to_contain_text("retry in 5 s")
        assert await late.is_disabled("#connect")

        # A dropped file that is not audio is refused in words, and the session goes on.
        await holder.evaluate(DROP_TEXT_FILE)
        await expect(holder.locator("#message")).to_contain_text("cannot use that file as speech")
        assert await holder.get_attribute("body", "data-state") == "connected"

        # Phone-sized: nothing sticks out sideways.
        assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert errors == []


async def test_echo_mode_reconnects_with_the_microphone_and_speaks_it() -> None:
    async with running_edge() as edge, chromium(FAKE_MICROPHONE) as browser:
        page, errors = await open_page(browser, edge.url, viewport=DESKTOP, permissions=["microphone"])
        await connect(page)
        without_microphone = await page.evaluate("window.lipstream.sessionId")

        await page.click("#mic")
        await page.wait_for_function(
            "old => ![null, old].includes(window.lipstream.sessionId) && document.body.dataset.state === 'connected'",
            arg=without_microphone,
            timeout=15_000,
        )
        assert await page.get_attribute("#mic", "aria-pressed") == "true"
        with_microphone = await page.evaluate("window.lipstream.sessionId")
        assert list(edge.edge.sessions) == [with_microphone]

        # Chromium's fake microphone beeps; the server speaks it live.
        await page.wait_for_selector("body[data-speaking=true]", timeout=5_000)
        assert errors == []

"""The demo page through a real TURN server: Chromium allowed nothing but relayed candidates
(`?ice=relay`, iceTransportPolicy "relay") reaches the edge through Debian's coturn with the
credentials the edge minted and decodes the avatar's H.264; credentials coturn refuses, wrong
or expired, are explained on the page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from browser_helpers import INBOUND_VIDEO, chromium, connect, open_page
from edge_helpers import running_edge, until
from turn_helpers import coturn

pytestmark = pytest.mark.asyncio(loop_scope="module")

SELECTED_PAIR = """async () => {
  const report = await window.lipstream.pc.getStats();
  let pair = null;
  report.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair = report.get(s.selectedCandidatePairId);
  });
  if (!pair) return null;
  const local = report.get(pair.localCandidateId), remote = report.get(pair.remoteCandidateId);
  return {local: local.candidateType, relayProtocol: local.relayProtocol ?? null, remote: remote.candidateType,
          url: local.url ?? null, state: pair.state};
}"""


async def test_page_connects_through_turn_alone_and_decodes_h264(tmp_path: Path) -> None:
    async with coturn(tmp_path) as server:
        turn = {"urls": [server.url], "secret": server.secret}
        async with running_edge(http={"turn": turn, "ice_port_range": "61100-61199"}) as edge, chromium() as browser:
            page, errors = await open_page(browser, f"{edge.url}/?ice=relay")
            await connect(page)
            first = await until(
                lambda: page.evaluate(INBOUND_VIDEO), lambda v: v is not None and v["frames"] > 0, "decoded video"
            )
            assert first["codec"].lower() == "video/h264"
            await until(
                lambda: page.evaluate(INBOUND_VIDEO), lambda v: v["frames"] >= first["frames"] + 25, "25 more frames"
            )
            pair = await page.evaluate(SELECTED_PAIR)
            assert pair["local"] == "relay" and pair["relayProtocol"] == "udp" and pair["state"] == "succeeded", pair
            # coturn gave the page a relay with the credentials GET /ice-servers minted for it.
            assert any(name.split(":", 1)[1].startswith("client-") for name in server.allocations())
            assert errors == []


@pytest.mark.parametrize("fault", ["wrong secret", "expired"])
async def test_turn_credentials_coturn_refuses_are_explained_on_the_page(tmp_path: Path, fault: str) -> None:
    async with coturn(tmp_path) as server:
        secret = "not-" + server.secret if fault == "wrong secret" else server.secret
        async with running_edge(http={"turn": {"urls": [server.url], "secret": secret}}) as edge, chromium() as browser:
            if fault == "expired":  # minted two hours ago, for an hour
                edge.edge.network.ice_servers.clock = lambda: time.time() - 7200
            page, errors = await open_page(browser, f"{edge.url}/?ice=relay")
            await page.click("#connect:not([disabled])")
            await page.wait_for_selector("body[data-state=error]", timeout=15_000)
            message = await page.text_content("#message") or ""
            assert f"the TURN server {server.url} refused its credentials (401 Unauthorized)" in message, message
            assert "expired" in message and await page.is_enabled("#connect")
            assert edge.edge.created == 0  # nothing reached the edge without a way back
            assert server.allocations() == []
            assert errors == []

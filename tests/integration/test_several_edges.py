"""Several edges behind one load balancer that knows nothing of sessions: every URL bound to a session points
at the edge that owns it (http.public_url), and an edge asked about another's session says so with a 404."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aiohttp
from aiohttp import web
from aiortc import RTCPeerConnection
from edge_helpers import RunningEdge, running_edge

from lipstream.client import Lipstream
from lipstream.lifecycle import free_port


@asynccontextmanager
async def round_robin(edges: list[RunningEdge]) -> AsyncIterator[str]:
    """A plain HTTP load balancer: each request, whatever it is, to the next edge in turn."""
    turns = itertools.cycle(edges)
    client = aiohttp.ClientSession()

    async def forward(request: web.Request) -> web.Response:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with client.request(
            request.method, next(turns).url + request.path_qs, headers=headers, data=await request.read()
        ) as answer:
            response = web.Response(status=answer.status, body=await answer.read())
            for name, value in answer.headers.items():
                if name.lower() not in ("content-length", "content-encoding", "transfer-encoding"):
                    response.headers.add(name, value)
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", forward)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()
        await client.close()


@asynccontextmanager
async def two_edges() -> AsyncIterator[list[RunningEdge]]:
    """Two edges, each knowing its own public URL, sharing one inference server."""
    ports = [free_port(), free_port()]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    async with running_edge(port=ports[0], http={"public_url": urls[0]}) as first:
        assert first.inference is not None
        shared = {"targets": [f"127.0.0.1:{first.inference.port}"]}
        async with running_edge(False, port=ports[1], http={"public_url": urls[1]}, inference=shared) as second:
            yield [first, second]


async def offer_sdp() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("video", direction="recvonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp = pc.localDescription.sdp
    await pc.close()
    return sdp


async def test_sessions_are_controlled_at_their_own_edge_whichever_edge_the_balancer_picks() -> None:
    async with two_edges() as edges, round_robin(edges) as balancer, Lipstream(balancer) as api:
        created = [await api.create(await offer_sdp()) for _ in range(2)]
        owners = [next(e for e in edges if s.session.id in e.edge.sessions) for s in created]
        assert {id(owner) for owner in owners} == {id(edge) for edge in edges}, "the balancer spread them"
        for new, owner in zip(created, owners):
            assert new.session.path == f"{owner.config.http.public_url}/sessions/{new.session.id}"
            assert (await new.session.state())["session_id"] == new.session.id  # straight to its edge, never the other
            assert await new.session.interrupt() == 0

        # Asked about a session it does not own, an edge says so and shows nothing of it.
        first, other = created[0].session, next(e for e in edges if e is not owners[0])
        async with aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {first.token}"}
            async with http.get(f"{other.url}/sessions/{first.id}", headers=auth) as r:
                body = await r.json()
        assert r.status == 404
        assert body["error"].startswith(f"no such session on this edge ({other.config.http.public_url})")
        assert first.id not in str(body)
        for new in created:
            await new.session.close()
        assert not any(edge.edge.sessions for edge in edges)


async def test_offer_and_whep_answers_name_the_owning_edges_urls() -> None:
    async with two_edges() as edges, round_robin(edges) as balancer, aiohttp.ClientSession() as http:
        async with http.post(f"{balancer}/offer", json={"sdp": await offer_sdp(), "type": "offer"}) as r:
            answer = await r.json()
        owner = next(e for e in edges if answer["session_id"] in e.edge.sessions)
        base, sid = owner.config.http.public_url, answer["session_id"]
        assert base is not None
        sockets = "ws" + base[4:]
        assert answer["urls"] == {
            "session": f"{base}/sessions/{sid}",
            "speech": f"{base}/sessions/{sid}/speech",
            "say": f"{base}/sessions/{sid}/say",
            "interrupt": f"{base}/sessions/{sid}/interrupt",
            "events": f"{sockets}/sessions/{sid}/events",
            "stream": f"{sockets}/sessions/{sid}/stream",
        }
        async with http.ws_connect(answer["urls"]["events"], headers={"Authorization": f"Bearer {answer['token']}"}):
            pass  # the events WebSocket opens where the answer says

        sdp = await offer_sdp()
        async with http.post(f"{balancer}/whep/default", data=sdp, headers={"Content-Type": "application/sdp"}) as r:
            assert r.status == 201
            location, token, links = r.headers["Location"], r.headers["X-Session-Token"], r.headers.getall("Link")
        whep_owner = next(e for e in edges if location.startswith(f"{e.config.http.public_url}/whep/sessions/"))
        whep_id = location.rsplit("/", 1)[1]
        assert whep_id in whep_owner.edge.sessions
        assert links == [f'<{whep_owner.config.http.public_url}/sessions/{whep_id}>; rel="lipstream-control"']
        async with http.delete(location, headers={"Authorization": f"Bearer {token}"}) as r:
            assert r.status == 200
        assert whep_id not in whep_owner.edge.sessions
        async with http.delete(answer["urls"]["session"], headers={"Authorization": f"Bearer {answer['token']}"}) as r:
            assert r.status == 200


async def test_without_a_public_url_the_answers_urls_are_paths() -> None:
    async with running_edge() as edge, aiohttp.ClientSession() as http:
        async with http.post(f"{edge.url}/offer", json={"sdp": await offer_sdp(), "type": "offer"}) as r:
            answer = await r.json()
        sid = answer["session_id"]
        assert answer["urls"]["session"] == f"/sessions/{sid}" and answer["urls"]["events"] == f"/sessions/{sid}/events"
        await edge.edge.close_session(sid)

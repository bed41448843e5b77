"""ICE servers: TURN REST credentials minted per session, the WHEP Link headers, and the config's rules."""

from __future__ import annotations

import base64
import hashlib
import hmac
from ipaddress import ip_address

import pytest
from pydantic import ValidationError

from media_server.config import EdgeConfig, HttpConfig
from media_server.webrtc.ice_servers import IceServer, IceServers, rtc_configuration, turn_rest_credential
from media_server.webrtc.public_address import advertise


def http(**fields: object) -> HttpConfig:
    return EdgeConfig.model_validate({"http": fields}).http


def test_turn_rest_credential_is_coturns_scheme() -> None:
    """username = expiry:name, password = base64(HMAC-SHA1(secret, username)): what use-auth-secret checks."""
    username, password = turn_rest_credential("s3cret", "w0.abc", 1_800_000_000)
    assert username == "1800000000:w0.abc"
    expected = base64.b64encode(hmac.new(b"s3cret", username.encode(), hashlib.sha1).digest()).decode()
    assert password == expected


def test_each_session_gets_its_own_credential_valid_for_the_ttl() -> None:
    static = {"urls": ["turn:t1.example.com"], "username": "u", "credential": "p"}
    turn_urls = ["turn:turn.example.com:3478?transport=udp", "turns:turn.example.com"]
    turn = {"urls": turn_urls, "secret": "k", "ttl_s": 600}
    config = http(ice_servers=["stun:stun.example.com:3478", static], turn=turn)
    servers = IceServers(config, clock=lambda: 1000.4)
    first, second = servers.for_session("w0.one"), servers.for_session("w0.two")
    assert first[:2] == [IceServer(("stun:stun.example.com:3478",)), IceServer(("turn:t1.example.com",), "u", "p")]
    assert first[2].urls == ("turn:turn.example.com:3478?transport=udp", "turns:turn.example.com")
    assert first[2].username == "1600:w0.one" and second[2].username == "1600:w0.two"
    assert first[2].credential == turn_rest_credential("k", "w0.one", 1600)[1] != second[2].credential
    # The edge's own peer connection gets the same servers, credentials and all.
    own = rtc_configuration(first).iceServers or []
    assert (own[2].urls, own[2].username, own[2].credential) == (turn_urls, "1600:w0.one", first[2].credential)


def test_without_turn_or_servers_there_is_nothing_to_hand_out() -> None:
    assert IceServers(http()).for_session("x") == []
    assert rtc_configuration([]).iceServers == []  # and aiortc's default STUN server is not used either


def test_link_headers_follow_the_whep_format() -> None:
    server = IceServer(("turn:t.example.com:3478?transport=udp", "turn:t.example.com:3478?transport=tcp"), "1:a", 'p"w')
    assert server.links() == [
        '<turn:t.example.com:3478?transport=udp>; rel="ice-server"; username="1:a"; credential="p\\"w"; '
        'credential-type="password"',
        '<turn:t.example.com:3478?transport=tcp>; rel="ice-server"; username="1:a"; credential="p\\"w"; '
        'credential-type="password"',
    ]
    assert IceServer(("stun:s.example.com",)).links() == ['<stun:s.example.com>; rel="ice-server"']
    assert server.as_json() == {"urls": list(server.urls), "username": "1:a", "credential": 'p"w'}


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"ice_servers": ["turn:user:pass@turn.example.com"]}, "never in the URL"),
        ({"ice_servers": ["http://turn.example.com"]}, "is not a stun:"),
        ({"ice_servers": ["stun:s.example.com?transport=udp"]}, "a STUN URL has no transport"),
        ({"ice_servers": [{"urls": []}]}, "at least 1"),
        ({"turn": {"urls": ["turn:t.example.com"]}}, "turn.urls and turn.secret"),
        ({"turn": {"secret": "k"}}, "turn.urls and turn.secret"),
        ({"turn": {"urls": ["stun:t.example.com"], "secret": "k"}}, "not a turn: or turns: URL"),
        ({"turn": {"urls": ["turn:t.example.com"], "secret": "k", "ttl_s": 5}}, "greater than or equal to 60"),
        ({"ice_port_range": "40000"}, "FIRST-LAST"),
        ({"ice_port_range": "40010-40000"}, "first not above the last"),
        ({"ice_port_range": "80-90"}, "1024-65535"),
        ({"public_ip": "edge.example.com"}, "IP"),
        ({"public_url": "edge.example.com"}, "not an http:// or https://"),
        ({"public_url": "https://edge.example.com/?x=1"}, "no query"),
    ],
)
def test_bad_network_settings_are_refused_with_the_reason(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        http(**fields)


def test_network_settings_in_their_normal_form() -> None:
    config = http(ice_port_range="40000-40999", public_ip="203.0.113.7", public_url="https://edge-1.example.com/")
    assert config.ice_ports == (40000, 40999)
    assert config.public_url == "https://edge-1.example.com"  # paths are appended to it
    assert http().ice_ports is None


ANSWER = "\r\n".join(
    [
        "v=0",
        "m=video 41000 UDP/TLS/RTP/SAVPF 97",
        "c=IN IP4 10.0.0.5",
        "a=candidate:1 1 udp 2130706431 10.0.0.5 41000 typ host",
        "a=candidate:2 1 udp 2130706431 172.17.0.1 41001 typ host",
        "a=candidate:3 1 udp 2130706431 fd00::2 41002 typ host",
        "a=candidate:4 1 udp 1694498815 198.51.100.9 41000 typ srflx raddr 10.0.0.5 rport 41000",
        "a=end-of-candidates",
        "",
    ]
)


def test_public_ip_replaces_the_host_candidates_of_its_family_and_keeps_their_ports() -> None:
    lines = advertise(ANSWER, ip_address("203.0.113.7")).split("\r\n")
    assert "c=IN IP4 203.0.113.7" in lines
    assert "a=candidate:1 1 udp 2130706431 203.0.113.7 41000 typ host" in lines
    assert "a=candidate:2 1 udp 2130706431 203.0.113.7 41001 typ host" in lines
    assert "a=candidate:3 1 udp 2130706431 fd00::2 41002 typ host" in lines  # IPv6 is not behind that NAT
    assert lines[6] == "a=candidate:4 1 udp 1694498815 198.51.100.9 41000 typ srflx raddr 10.0.0.5 rport 41000"
    assert not any("10.0.0.5 " in line and "typ host" in line for line in lines)


def test_a_url_with_credentials_is_refused_without_repeating_them() -> None:
    """The reason is printed at start-up: it names the server, not its password."""
    with pytest.raises(ValidationError) as refused:
        http(ice_servers=["turn:alice:hunter2@turn.example.com:3478"])
    reason = refused.value.errors()[0]["msg"]
    assert "turn.example.com:3478" in reason and "hunter2" not in reason and "alice" not in reason

"""The OpenAPI document at /openapi.json is true of the running edge (its validity: test_openapi_document.py).

The fuzzing drives a real edge (over a real inference server) with schemathesis' cases, valid and
invalid, for every operation: as a stranger, as the owner of a live session, with the right session
and a wrong token and the other way round. It fails on any 5xx, any request left unanswered and any
answer the document does not describe, naming the request and the edge's traceback.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
import requests
import schemathesis
from edge_helpers import RunningEdge, running_edge
from fuzz_inputs import CREDENTIALS, SDP_LIKE, SPEECH_LIMITS, TRICKLE_LIKE
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from schemathesis import Case, GenerationMode
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.schemas import APIOperation, BaseSchema
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from benchmarks.kit.viewer import Viewer, connect_viewer

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
API_KEY = "fuzz-api-key"
# The edge, in this process, uses `random` (aiortc, aioice) while Hypothesis draws cases in another
# thread, which Hypothesis takes for a strategy using it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module:hypothesis.errors.HypothesisDeprecationWarning"
)
REQUEST_TIMEOUT_S = 10.0  # a request not answered by then hangs
# Examples per operation and way of calling it; deterministic (derandomized), sized to keep this file
# under a minute on two cores.
STRANGER_EXAMPLES = 10
OWNER_EXAMPLES = 15
CRAFTED_EXAMPLES = 30
DELETE_EXAMPLES = 4
WRONG_TYPES = ["text/plain", "application/json", "application/sdp", "application/x-www-form-urlencoded"]
DOCUMENT_CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


# --- fuzzing ---------------------------------------------------------------------------------------
class _Records(logging.Handler):
    """The edge's error log (tracebacks included), to show with the request that caused it."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Fuzzer:
    """Sends cases to the edge and keeps what went wrong: each kind once, with its request and the edge's log."""

    base: str
    log: _Records
    http: requests.Session = field(default_factory=requests.Session)
    sent: int = 0
    answers: Counter[tuple[str, int]] = field(default_factory=Counter)  # (operation, status)
    # Keyed by operation and what went wrong (the edge's exception, or the document check).
    server_errors: dict[str, list[str]] = field(default_factory=dict)
    hangs: dict[str, list[str]] = field(default_factory=dict)
    undocumented: dict[str, list[str]] = field(default_factory=dict)

    def send(self, case: Case) -> None:
        self.sent += 1
        label, seen, started = case.operation.label, len(self.log.lines), time.monotonic()
        try:
            response = case.call(base_url=self.base, session=self.http, timeout=REQUEST_TIMEOUT_S)
        except requests.Timeout:
            self.hangs.setdefault(label, []).append(
                f"{_planned(case, self.base)}\nno answer within {REQUEST_TIMEOUT_S:.0f} s"
            )
            return
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            log = self._log(seen)
            self.server_errors.setdefault(f"{label}: {_what(log)}", []).append(
                f"{_planned(case, self.base)}\nconnection lost: {exc}\nedge log:\n{log}"
            )
            return
        self.answers[label, response.status_code] += 1
        if response.status_code >= 500:
            log, answer = self._log(seen), response.content[:300].decode("utf-8", "replace")
            self.server_errors.setdefault(f"{label}: {response.status_code} {_what(log)}", []).append(
                f"{_sent(response.request)}\n-> {response.status_code} after {time.monotonic() - started:.2f} s: "
                f"{answer}\nedge log:\n{log}"
            )
            return
        try:
            case.validate_response(response, checks=DOCUMENT_CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                self.undocumented.setdefault(f"{label}: {failure.title}", []).append(
                    f"{_sent(response.request)}\n-> {response.status_code}: {failure}"
                )

    def _log(self, seen: int) -> str:
        time.sleep(0.05)  # the edge logs a traceback as it answers
        return "\n".join(self.log.lines[seen:]) or "(nothing)"

    def fuzz(self, strategy: st.SearchStrategy[Case], examples: int) -> None:
        @settings(
            max_examples=examples,
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @given(case=strategy)
        def run(case: Case) -> None:
            self.send(case)

        run()

    def report(self) -> str:
        parts = []
        for title, found in (
            ("server errors", self.server_errors),
            ("hangs", self.hangs),
            ("answers the document does not describe", self.undocumented),
        ):
            parts.append(f"=== {sum(map(len, found.values()))} {title}, {len(found)} kinds")
            parts += [f"--- {kind} ({len(cases)}x), the first:\n{cases[0]}" for kind, cases in found.items()]
        return "\n\n".join(parts)


def _what(log: str) -> str:
    """The edge's exception and where it was raised: one kind of error, whatever the input."""
    lines = log.strip().splitlines()
    where = [line.strip() for line in lines if line.strip().startswith("File ")]
    return f"{lines[-1].split(':', 1)[0]}{' at ' + where[-1] if where else ''}"


def _sent(request: requests.PreparedRequest) -> str:
    raw = request.body
    body = raw.encode() if isinstance(raw, str) else raw if isinstance(raw, bytes) else b""
    headers = ", ".join(
        f"{name}: {value.decode('latin-1') if isinstance(value, bytes) else value}"
        for name, value in request.headers.items()
    )
    return f"{request.method} {request.url}\n  headers: {headers}\n  body ({len(body)} B): {body[:300]!r}"


def _planned(case: Case, base: str) -> str:
    kwargs = case.as_transport_kwargs(base_url=base)
    return f"{kwargs.get('method')} {kwargs.get('url')} {str({k: v for k, v in kwargs.items() if k != 'url'})[:600]}"


@dataclass
class Plan:
    """Every operation of the document, with the ways to call it."""

    schema: BaseSchema

    def operations(self, select: Callable[[APIOperation], bool] = lambda op: True) -> list[APIOperation]:
        operations = []
        for result in self.schema.get_all_operations():
            assert isinstance(result, Ok), f"schemathesis cannot read an operation: {result}"
            operations += [result.ok()] if select(result.ok()) else []
        return operations

    @staticmethod
    def of_session(op: APIOperation) -> bool:
        return "{session_id}" in op.path

    @staticmethod
    def modes(op: APIOperation, **overrides: Any) -> list[st.SearchStrategy[Case]]:
        """Valid and invalid cases; invalid ones only where something is left to break."""
        strategies = [op.as_strategy(GenerationMode.POSITIVE, **overrides)]
        fixed = set(overrides.get("path_parameters", {})) | set(overrides.get("headers", {}))
        # A path parameter that may be any string cannot be made invalid.
        breakable = [p for p in op.iter_parameters() if p.name not in fixed and p.definition.get("in") != "path"] + [
            p for p in op.path_parameters if p.name not in fixed and p.optimized_schema != {"type": "string"}
        ]
        if breakable or op.body:
            strategies.append(op.as_strategy(GenerationMode.NEGATIVE, **overrides))
        return strategies


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def fuzz_as_stranger(fuzzer: Fuzzer, plan: Plan) -> None:
    """Every operation with whatever ids and credentials schemathesis makes up."""
    for op in plan.operations():
        for strategy in plan.modes(op):
            fuzzer.fuzz(strategy, STRANGER_EXAMPLES)


def fuzz_as_client(fuzzer: Fuzzer, plan: Plan) -> None:
    """Opening sessions with the API key: bodies as the document says and not, and the wrong content types."""
    key = _bearer(API_KEY)
    for op in plan.operations(lambda op: op.method == "post" and not plan.of_session(op)):
        for strategy in plan.modes(op, headers=key):
            fuzzer.fuzz(strategy, OWNER_EXAMPLES)
    wrong_types = {
        plan.schema["/offer"]["POST"]: "application/json",
        plan.schema["/whep/{avatar}"]["POST"]: "application/sdp",
    }
    for op, right in wrong_types.items():
        fuzzer.fuzz(
            st.builds(
                lambda media_type, text, op=op: op.Case(
                    path_parameters={"avatar": "lipstream-default"} if "{avatar}" in op.path else None,
                    body=text,
                    media_type=media_type,
                    headers=key,
                ),
                st.sampled_from([t for t in WRONG_TYPES if t != right]),
                st.text(max_size=20),
            ),
            8,
        )


def fuzz_a_live_session(fuzzer: Fuzzer, plan: Plan, viewer: Viewer) -> None:
    """A live session's operations (all but ending it) as its owner, with a wrong token, and at wrong ids."""
    live = {"session_id": viewer.session_id}
    for op in plan.operations(lambda op: plan.of_session(op) and op.method != "delete"):
        for strategy in plan.modes(op, path_parameters=live, headers=_bearer(viewer.token)):
            fuzzer.fuzz(strategy, OWNER_EXAMPLES)
        fuzzer.fuzz(op.as_strategy(GenerationMode.POSITIVE, path_parameters=live), STRANGER_EXAMPLES)
        fuzzer.fuzz(op.as_strategy(GenerationMode.POSITIVE, headers=_bearer(viewer.token)), STRANGER_EXAMPLES)
        if op.path.startswith("/whep/"):  # a WHEP resource answers to the API key too
            fuzzer.fuzz(op.as_strategy(GenerationMode.POSITIVE, path_parameters=live, headers=_bearer(API_KEY)), 5)


def fuzz_crafted_bodies(fuzzer: Fuzzer, plan: Plan, viewer: Viewer) -> None:
    """SDP-like offers and trickle fragments, which random text rarely is, to reach the SDP and ICE parsers."""
    offer = plan.schema["/offer"]["POST"]
    whep = plan.schema["/whep/{avatar}"]["POST"]
    patch = plan.schema["/whep/sessions/{session_id}"]["PATCH"]
    fuzzer.fuzz(
        st.builds(
            lambda media_type, text: patch.Case(
                path_parameters={"session_id": viewer.session_id},
                body=text,
                media_type=media_type,
                headers=_bearer(viewer.token),
            ),
            st.sampled_from(WRONG_TYPES),
            st.text(max_size=20),
        ),
        8,
    )
    avatars = st.sampled_from([None, "", "lipstream-default", "default", "../etc", "x" * 65])
    fuzzer.fuzz(
        st.builds(
            lambda sdp, avatar: offer.Case(
                body={"sdp": sdp, "type": "offer", "avatar": avatar},
                media_type="application/json",
                headers=_bearer(API_KEY),
            ),
            SDP_LIKE,
            avatars,
        ),
        CRAFTED_EXAMPLES,
    )
    fuzzer.fuzz(
        st.builds(
            lambda sdp: whep.Case(
                path_parameters={"avatar": "lipstream-default"},
                body=sdp,
                media_type="application/sdp",
                headers=_bearer(API_KEY),
            ),
            SDP_LIKE,
        ),
        CRAFTED_EXAMPLES,
    )
    fuzzer.fuzz(
        st.builds(
            lambda fragment: patch.Case(
                path_parameters={"session_id": viewer.session_id},
                body=fragment,
                media_type="application/trickle-ice-sdpfrag",
                headers=_bearer(viewer.token),
            ),
            TRICKLE_LIKE,
        ),
        CRAFTED_EXAMPLES,
    )


def fuzz_credentials(fuzzer: Fuzzer, plan: Plan, viewer: Viewer) -> None:
    """Any Authorization header a client can send, where the edge compares it with a secret."""

    def with_credentials(case: Case, credentials: str) -> Case:
        case.headers["Authorization"] = credentials
        return case

    live = {"session_id": viewer.session_id}
    for op in plan.operations(lambda op: plan.of_session(op) or op.method == "post"):
        cases = op.as_strategy(GenerationMode.POSITIVE, path_parameters=live if plan.of_session(op) else None)
        fuzzer.fuzz(st.builds(with_credentials, cases, CREDENTIALS), STRANGER_EXAMPLES)


def fuzz_ending(fuzzer: Fuzzer, plan: Plan, viewer: Viewer, path: str) -> None:
    """Ending a live session with its token: the first answer ends it, the rest find none."""
    op = plan.schema[path]["DELETE"]
    live = {"session_id": viewer.session_id}
    owner = op.as_strategy(GenerationMode.POSITIVE, path_parameters=live, headers=_bearer(viewer.token))
    fuzzer.fuzz(owner, DELETE_EXAMPLES)


async def _live_viewer(http: aiohttp.ClientSession, edge: RunningEdge) -> Viewer:
    viewer = await connect_viewer(http, edge.url)
    deadline = time.monotonic() + 10
    while not edge.edge.peer(viewer.session_id).connected:  # past the connect timeout's reach
        assert time.monotonic() < deadline, "the viewer did not connect"
        await asyncio.sleep(0.05)
    return viewer


@pytest.fixture
def edge_log() -> Iterator[_Records]:
    handler = _Records()
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


async def test_the_edge_answers_whatever_its_document_generates_without_5xx_or_hang(edge_log: _Records) -> None:
    """No input a client can send costs a 500 or a request left hanging, and every answer is the documented one."""
    # Admission is opened up so the fuzzing reaches the offer parsers rather than a 429, and no 503
    # refuses an offer because the fuzzing itself makes the live session's frames late.
    http_config = {"api_key": API_KEY, "sessions_per_minute": 60_000.0, "session_burst": 10_000}
    async with (
        running_edge(http=http_config, sessions={"overload_late_pct": 100.0, **SPEECH_LIMITS}) as edge,
        aiohttp.ClientSession(headers=_bearer(API_KEY)) as http,
    ):
        schema = await asyncio.to_thread(schemathesis.openapi.from_url, f"{edge.url}/openapi.json")
        plan, fuzzer = Plan(schema), Fuzzer(edge.url, edge_log)
        started = time.monotonic()
        viewer = await _live_viewer(http, edge)
        try:
            await asyncio.to_thread(fuzz_as_stranger, fuzzer, plan)
            await asyncio.to_thread(fuzz_as_client, fuzzer, plan)
            await asyncio.to_thread(fuzz_a_live_session, fuzzer, plan, viewer)
            await asyncio.to_thread(fuzz_crafted_bodies, fuzzer, plan, viewer)
            await asyncio.to_thread(fuzz_credentials, fuzzer, plan, viewer)
            await asyncio.to_thread(fuzz_ending, fuzzer, plan, viewer, "/whep/sessions/{session_id}")
        finally:
            await viewer.close(http)
        viewer = await _live_viewer(http, edge)
        try:
            await asyncio.to_thread(fuzz_ending, fuzzer, plan, viewer, "/sessions/{session_id}")
        finally:
            await viewer.close(http)
        elapsed = time.monotonic() - started
    assert not (fuzzer.server_errors or fuzzer.hangs or fuzzer.undocumented), fuzzer.report()
    answers = f"{fuzzer.sent} requests in {elapsed:.0f} s: {sorted(fuzzer.answers.items())}"
    # The fuzzing reached the live session and the parsers behind the checks, not only 4xx at the door.
    for reached in [
        ("GET /sessions/{session_id}", 200),
        ("POST /sessions/{session_id}/speech", 202),
        ("POST /sessions/{session_id}/speech", 422),
        ("PATCH /whep/sessions/{session_id}", 204),
        ("PATCH /whep/sessions/{session_id}", 400),
        ("POST /offer", 400),
        ("POST /whep/{avatar}", 400),
        ("DELETE /whep/sessions/{session_id}", 200),
        ("DELETE /sessions/{session_id}", 200),
    ]:
        assert fuzzer.answers[reached], f"never answered {reached}; {answers}"

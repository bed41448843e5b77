"""The OpenAPI document at /openapi.json: valid, and route for route the app's."""

from __future__ import annotations

from typing import Any

import aiohttp
import schemathesis
from aiohttp import web
from edge_helpers import running_edge
from openapi_spec_validator import validate
from schemathesis.core.result import Ok

from signaling.app import create_app
from signaling.errors import ERROR_STATUS
from signaling.openapi import document

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def app_operations(app: web.Application) -> set[tuple[str, str]]:
    """(METHOD, OpenAPI path) of every route; aiohttp's HEAD twin of each GET is the GET's."""
    routes: set[tuple[str, str]] = set()
    for route in app.router.routes():
        resource = route.resource
        assert resource is not None
        if isinstance(resource, web.StaticResource):
            path = resource.get_info()["prefix"] + "/{path}"  # serves the rest of the path as a file name
        else:
            path = resource.canonical
        routes.add((route.method, path))
    heads = {route for route in routes if route[0] == "HEAD"}
    assert all(("GET", path) in routes for _, path in heads), "a HEAD route without its GET"
    return routes - heads


def document_operations(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items() for method in item if method in HTTP_METHODS}


async def test_served_document_is_valid_openapi_and_names_every_route() -> None:
    """Routes and document drift apart silently otherwise: each must name exactly the other's operations."""
    async with running_edge(False) as edge, aiohttp.ClientSession() as http:
        async with http.get(f"{edge.url}/openapi.json") as response:
            assert response.status == 200
            assert response.content_type == "application/json"
            served = await response.json()
        app = create_app(edge.edge)  # the same routes as the app serving
    assert served == document()
    validate(served)  # OpenAPI 3.1, every $ref resolving, path parameters declared
    schema = schemathesis.openapi.from_dict(served)
    assert all(isinstance(result, Ok) for result in schema.get_all_operations())
    in_app, in_document = app_operations(app), document_operations(served)
    assert in_app - in_document == set(), "routes the document does not describe"
    assert in_document - in_app == set(), "operations the app does not have"


def test_every_status_the_code_maps_errors_to_is_documented_with_the_error_schema() -> None:
    """Clients branch on these: each media-core error's status is documented, its JSON is {"error": ...},
    and the answers that carry Retry-After say so."""
    doc = document()
    responses = doc["components"]["responses"]
    for name in ("TooManySessions", "ServerFull"):
        assert "Retry-After" in responses[name]["headers"], name
    documented = {
        int(status)
        for item in doc["paths"].values()
        for method, operation in item.items()
        if method in HTTP_METHODS
        for status in operation["responses"]
    }
    assert set(ERROR_STATUS.values()) | {401, 403, 415} <= documented
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if method not in HTTP_METHODS:
                continue
            for status, answer in operation["responses"].items():
                if "$ref" in answer:
                    answer = responses[answer["$ref"].rsplit("/", 1)[1]]
                json_body = answer.get("content", {}).get("application/json", {}).get("schema")
                if status.startswith("4") and json_body is not None:
                    assert json_body == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {status}"

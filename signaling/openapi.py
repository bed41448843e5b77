"""`GET /openapi.json`: the API's OpenAPI document, kept as YAML next to the handlers and served as JSON.

Client generators and API tools look for the document at this path; the YAML is the one source
(tests/integration/test_openapi_fuzz.py holds it to the routes and fuzzes the edge with it).
"""

from __future__ import annotations

import json
from functools import cache
from importlib import metadata, resources
from typing import Any

import yaml
from aiohttp import web

DOCUMENT = "openapi.yaml"


def document() -> dict[str, Any]:
    """The document, with the installed package's version (so it cannot lag a release)."""
    text = resources.files("signaling").joinpath(DOCUMENT).read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    try:
        data["info"]["version"] = metadata.version("lipstream")
    except metadata.PackageNotFoundError:  # run from a source tree: the YAML's own version stands
        pass
    return data


@cache
def _body() -> bytes:
    """Read and converted once: the document only changes with the package."""
    return json.dumps(document(), ensure_ascii=False).encode("utf-8")


async def openapi_json(request: web.Request) -> web.Response:
    return web.Response(body=_body(), content_type="application/json", charset="utf-8")


route = web.get("/openapi.json", openapi_json)

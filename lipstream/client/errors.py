"""The client's errors: what the edge answered (its status and its words), or that it could not be reached."""

from __future__ import annotations


class LipstreamError(Exception):
    """Anything that went wrong talking to a lipstream edge."""


class Unreachable(LipstreamError):
    """The edge could not be reached, or the connection broke."""


class ApiError(LipstreamError):
    """The edge refused a request: `status` is the HTTP status, `message` its `{"error": ...}` text.

    `retry_after` is set (seconds) when the edge said when to try again (503 full, 429 too fast).
    """

    def __init__(self, status: int, message: str, retry_after: float | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after


class BadRequest(ApiError):
    """400 (and 413, 415, 422): the request itself cannot be served; sending it again will not help."""


class Forbidden(ApiError):
    """401/403: a missing or wrong API key or session token."""


class NotFound(ApiError):
    """404: no such session (it ended) or avatar."""


class Busy(ApiError):
    """409/429/503: not now (queue full, server full, interrupted, no engine); `retry_after` may say when."""


class EngineFailed(ApiError):
    """502/504: the text-to-speech engine failed or stayed silent."""


_BY_STATUS: dict[int, type[ApiError]] = {
    400: BadRequest,
    401: Forbidden,
    403: Forbidden,
    404: NotFound,
    409: Busy,
    413: BadRequest,
    415: BadRequest,
    422: BadRequest,
    429: Busy,
    502: EngineFailed,
    503: Busy,
    504: EngineFailed,
}


def api_error(status: int, message: str, retry_after: float | None = None) -> ApiError:
    """The most specific error class for `status`."""
    return _BY_STATUS.get(status, ApiError)(status, message, retry_after)

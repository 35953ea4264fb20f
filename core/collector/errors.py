"""The collector's refusals: an ApiError becomes `{"response": {"status": "error", ...}}`.

The answer also carries `code` and `message` at the top level, where Segment's and
RudderStack's SDKs read them (`APIError(status, code, message)`): RudderStack's Python SDK
raises KeyError on an error body without `code` and retries it as if the network had failed.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse


class ApiError(Exception):
    """A request refused with a 4xx status and a message naming the field and the rule."""

    def __init__(self, status: int, message: str, *, errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}
        super().__init__(message)


#: the top-level `code` of an error answer, by status
CODES = {
    400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
    405: "method_not_allowed", 413: "too_large", 415: "unsupported_encoding", 422: "invalid",
    429: "rate_limited",
}


def error_response(exc: ApiError) -> JSONResponse:
    body: dict[str, Any] = {"status": "error", "message": exc.message}
    if exc.errors:
        body["errors"] = exc.errors
    return JSONResponse({"response": body, "code": CODES.get(exc.status, "error"),
                         "message": exc.message},
                        status_code=exc.status, headers=exc.headers)

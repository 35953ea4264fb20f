"""Constants of the function destination (docs/destinations/function.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "function"
#: the function the engine calls for each message: onEvent(event, settings, metadata)
ENTRY = "onEvent"
#: the function that reads each answer, when the code defines one:
#: classify(response, settings, metadata)
CLASSIFY = "classify"
#: the fields of a request the function returns
REQUEST_FIELDS = ("method", "url", "headers", "body")
#: the methods a function may send; a request without `method` is a POST
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})
DEFAULT_METHOD = "POST"
#: methods whose requests carry no body
NO_BODY = frozenset({"GET"})
#: headers the engine (httpx) writes from the request itself: a function's value would
#: contradict the body or the connection
ENGINE_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection",
                            "keep-alive", "upgrade", "te", "trailer"})
#: a header name: an RFC 9110 token
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: characters a header value may not hold (they would end the header or the request)
HEADER_VALUE_FORBIDDEN = re.compile(r"[\r\n\x00]")
#: what a body that is a string is sent as unless the function says otherwise
TEXT_CONTENT_TYPE = "text/plain; charset=utf-8"
JSON_CONTENT_TYPE = "application/json"

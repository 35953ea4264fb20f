"""A request's body as the collector reads it: at most `max_body_bytes` on the wire and, for a
gzip body (`Content-Encoding: gzip`, what Segment's and RudderStack's server SDKs send), at
most `max_body_bytes` once inflated too. The inflating stops one byte past the limit, so a
small body that would inflate to gigabytes (a gzip bomb) costs no more memory than the limit.

The Content-Type is not looked at: the body is JSON whatever it says. analytics.js sends its
beacons (`navigator.sendBeacon`) as `text/plain`, which a browser may send without a CORS
preflight, and SDKs differ in what they write there.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from starlette.requests import Request

from crossdock.collector.errors import ApiError
from crossdock.json_shape import loads

#: Content-Encoding values taken as gzip (x-gzip is the older name, RFC 9110 8.4.1.3)
GZIP = frozenset({"gzip", "x-gzip"})
IDENTITY = frozenset({"", "identity"})
_GZIP_WBITS = 16 + zlib.MAX_WBITS


class Gunzip:
    """Inflates a gzip stream fed in pieces, refusing (413) output past `limit` bytes. Several
    gzip members one after another inflate to their concatenation, as gzip(1) does."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.size = 0
        self._inflater = zlib.decompressobj(_GZIP_WBITS)
        self._started = False

    def feed(self, data: bytes) -> bytes:
        out: list[bytes] = []
        while data:
            self._started = True
            try:
                piece = self._inflater.decompress(data, self.limit - self.size + 1)
            except zlib.error as exc:
                raise ApiError(400, f"body: not valid gzip ({exc})") from exc
            self.size += len(piece)
            if self.size > self.limit:
                raise ApiError(413, f"body: at most {self.limit} bytes once inflated "
                                    "(Content-Encoding: gzip)")
            out.append(piece)
            data = self._inflater.unconsumed_tail
            if self._inflater.eof:
                data = self._inflater.unused_data + data
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
                self._started = False
        return b"".join(out)

    def finish(self) -> None:
        """Refuse a stream that stopped inside a gzip member."""
        if self._started and not self._inflater.eof:
            raise ApiError(400, "body: not valid gzip (the stream ends before its last "
                                "member does)")


async def read_body(request: Request, limit: int) -> bytes:
    """The body's bytes (inflated when gzip), or ApiError 413 past `limit`, 415 for a
    Content-Encoding other than gzip or identity, 400 for a broken gzip stream."""
    encoding = request.headers.get("content-encoding", "").strip().lower()
    gunzip: Gunzip | None = None
    if encoding in GZIP:
        gunzip = Gunzip(limit)
    elif encoding not in IDENTITY:
        raise ApiError(415, f"content-encoding: {encoding!r} is not supported; send the body "
                            "as it is or gzip it (Content-Encoding: gzip)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body: at most {limit} bytes, got {declared}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body: at most {limit} bytes")
        chunks.append(gunzip.feed(chunk) if gunzip is not None else chunk)
    if gunzip is not None:
        gunzip.finish()
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """The body as JSON, or ApiError 400 saying where it stopped being JSON. Any depth parses
    and NaN or Infinity is read as a number: the message holding one is refused by its field
    (crossdock.json_shape), not the whole body."""
    if not raw.strip():
        raise ApiError(400, "body: is empty; send a JSON object")
    try:
        return loads(raw)
    except json.JSONDecodeError as exc:
        raise ApiError(400, f"body: not valid JSON ({exc.msg} at line {exc.lineno} "
                            f"column {exc.colno})") from exc
    except UnicodeDecodeError as exc:
        raise ApiError(400, "body: not UTF-8 text") from exc
    except ValueError as exc:
        raise ApiError(400, f"body: not valid JSON ({exc})") from exc

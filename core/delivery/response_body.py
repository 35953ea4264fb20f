"""How much of a destination's answer the engine reads, and the response a plugin gets.

A destination answering 200 with a 1 GB body took the daemon from 82 MB to 2.1 GB: the body
was read whole, whatever its size, before the plugin looked at its start. Plugins classify an
answer from its status, its headers and the start of its body, so the engine reads at most
`max_response_bytes` of it (the plugin's `max_response_bytes`, 1 MiB unless a plugin needs
more; `delivery.max_response_bytes` overrides it) and closes the connection, never reading the
rest. A compressed body is inflated up to the same size, so a small body that would inflate
to gigabytes costs no more.

The plugin gets a response already read: `content` is the body's start, decoded. A decoded
response no longer says `Content-Encoding` (its content is not encoded any more); one in an
encoding the engine does not ask for (it asks for gzip or deflate) is handed over as it came,
with its Content-Encoding.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterator, Sequence
from typing import Any

import httpx

from crossdock.destination import DEFAULT_MAX_RESPONSE_BYTES

__all__ = ["ACCEPT_ENCODING", "DEFAULT_MAX_RESPONSE_BYTES", "decoded", "read_capped",
           "read_response"]
#: what the engine asks for when a plugin's request does not say: encodings `decoded` inflates
ACCEPT_ENCODING = "gzip, deflate"
_GZIP_WBITS = 16 + zlib.MAX_WBITS


async def read_capped(chunks: AsyncIterable[bytes], limit: int) -> tuple[bytes, bool]:
    """The first `limit` bytes of a stream, and whether there was more (then the caller closes
    the connection instead of reading on)."""
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        if size + len(chunk) > limit:
            parts.append(chunk[:limit - size])
            return b"".join(parts), True
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts), False


def decoded(raw: bytes, content_encoding: str, limit: int) -> bytes | None:
    """`raw` with its Content-Encoding undone, at most `limit` bytes of it; None when an
    encoding is not gzip or deflate. Raises zlib.error for a corrupt stream; a stream cut
    short (the body's start) inflates as far as it goes."""
    codings = [c.strip().lower() for c in content_encoding.split(",")]
    for coding in reversed(codings):  # the last applied is undone first
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            raw = zlib.decompressobj(_GZIP_WBITS).decompress(raw, limit)
        elif coding == "deflate":
            try:
                raw = zlib.decompressobj().decompress(raw, limit)
            except zlib.error:  # raw deflate, without the zlib header some servers leave out
                raw = zlib.decompressobj(-zlib.MAX_WBITS).decompress(raw, limit)
        else:
            return None
    return raw


def read_response(
    status: int, headers: Sequence[tuple[bytes, bytes]], raw: bytes, request: httpx.Request,
    extensions: dict[str, Any], limit: int,
) -> httpx.Response:
    """The response a plugin classifies: `raw` (the body's start as it came) decoded up to
    `limit` bytes, in the state `read()` leaves a response in."""
    encoding = None
    for name, value in headers:  # a loop: a generator per response cost more than the search
        if name.lower() == b"content-encoding":
            encoding = value
            break
    body = raw
    if encoding is not None:
        try:
            inflated = decoded(raw, encoding.decode("latin-1"), limit)
        except zlib.error as exc:
            raise httpx.DecodingError(f"the {encoding.decode('latin-1')} body does not "
                                      f"decode ({exc})", request=request) from exc
        if inflated is not None:
            body = inflated
            headers = [(name, value) for name, value in headers
                       if name.lower() != b"content-encoding"]
    return _read(status, headers, body, request, extensions)


def _read(status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes,
          request: httpx.Request, extensions: dict[str, Any]) -> httpx.Response:
    return ReadResponse(status, headers, body, request, extensions)


class ReadResponse(httpx.Response):
    """An httpx.Response holding `body` as its content, read and closed, as `read()` leaves
    one. `Response(content=body)` would get there through httpx's generators (decoder,
    chunkers) and a second look through the headers for the Content-Length already there:
    most of the cost of building a small response. So the body is kept here and given by
    the public members that read it (`content`, `read`, `aread`, `iter_bytes`,
    `aiter_bytes`, `num_bytes_downloaded`); text and JSON are read from `content`.

    Its `headers` are made from the raw ones when first read: a plugin judging a 2xx by its
    status never reads them, and making them (every name and value checked, each name
    lowered) was most of the cost of building the response."""

    def __init__(self, status: int, headers: Sequence[tuple[bytes, bytes]], body: bytes,
                 request: httpx.Request, extensions: dict[str, Any]) -> None:
        super().__init__(status, stream=httpx.ByteStream(body), request=request,
                         extensions=extensions)
        self._raw_headers = headers
        self._headers: httpx.Headers | None = None  # the empty ones httpx set: not these
        self.body = body
        self.is_stream_consumed = True
        self.is_closed = True

    @property  # type: ignore[override]
    def headers(self) -> httpx.Headers:
        if self._headers is None:
            self._headers = httpx.Headers(self._raw_headers)
        return self._headers

    @headers.setter
    def headers(self, value: httpx.Headers) -> None:
        self._headers = value

    @property
    def content(self) -> bytes:
        return self.body

    @property
    def num_bytes_downloaded(self) -> int:
        return len(self.body)

    def read(self) -> bytes:
        return self.body

    async def aread(self) -> bytes:
        return self.body

    def iter_bytes(self, chunk_size: int | None = None) -> Iterator[bytes]:
        yield from _chunks(self.body, chunk_size)

    async def aiter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        for chunk in _chunks(self.body, chunk_size):
            yield chunk


def _chunks(body: bytes, size: int | None) -> Iterator[bytes]:
    """`body` in pieces of `size` bytes (all at once without one), as httpx chunks content."""
    step = max(len(body) if size is None else size, 1)
    for start in range(0, len(body), step):
        yield body[start:start + step]

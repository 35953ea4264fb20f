"""vcrpy cassettes for destination contract tests, shared by every plugin.

A cassette test sends a plugin's requests through httpx to the plugin's contract fake (a real
server on 127.0.0.1) while vcrpy records them; by default it replays the committed cassette and
never touches the network. Re-record every plugin's cassettes with one command:

    CROSSDOCK_RECORD=1 pytest tests/plugins -k cassette

    VCR = plugin_vcr(Path(__file__).parent / "cassettes")

    def test_cassette_delivered(fake_url):
        with VCR.use_cassette("delivered.yaml"):
            response = httpx.Client().send(planned.request)

Requests match on method, path, query and body, never on host or port: the fakes listen on a
random port, so the recorded address means nothing. The recorded address is rewritten to
127.0.0.1 without a port, and secrets (Authorization, signature headers, access tokens) and
what changes with every attempt (appsecret_time) are filtered before anything is written, as
are OAuth2 credentials in bodies (an access token answered, an assertion or refresh token
sent: `crossdock.redact.TOKEN_FIELDS`).
Given the settings' secret values (`plugin_vcr(folder, secrets=secret_values(settings))`),
each is also replaced wherever it stands, in the URL, headers and bodies of requests and
replies alike; a live request is scrubbed the same way before it is matched, so it still
finds its recording.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import vcr
from vcr.persisters.filesystem import CassetteNotFoundError, FilesystemPersister
from vcr.request import Request

from crossdock.redact import SECRET_HEADERS, SECRET_QUERY, scrub, scrub_bytes, scrub_token_fields

RECORD_ENV = "CROSSDOCK_RECORD"

#: request headers that carry credentials or signatures derived from them
FILTERED_HEADERS = tuple(sorted(SECRET_HEADERS))
#: query parameters that carry credentials
FILTERED_QUERY = tuple(sorted(SECRET_QUERY))
#: query parameters that change with every attempt (Meta's appsecret_time): left out of the
#: recording and of matching, as the proof they go with is
VOLATILE_QUERY = ("appsecret_time",)
#: response headers that change on every run and only make re-recorded diffs noisy
_VOLATILE_RESPONSE_HEADERS = frozenset({"date", "server"})

_LOOPBACK_PORT = re.compile(r"^(https?://(?:127\.0\.0\.1|localhost|\[::1\])):\d+")


def recording() -> bool:
    """True when this run re-records cassettes (CROSSDOCK_RECORD=1) instead of replaying."""
    return os.environ.get(RECORD_ENV, "").strip().lower() in {"1", "true", "yes"}


def record_mode() -> str:
    """"all" (hit the fake and overwrite) when recording, else "none" (replay only)."""
    return "all" if recording() else "none"


def _scrubber(secrets: Sequence[str]) -> tuple[Callable[[Request], Request],
                                               Callable[[dict[str, Any]], dict[str, Any]]]:
    """vcrpy's before_record_request and before_record_response for these secrets."""

    def request_filter(request: Request) -> Request:
        # The fake's random port would make every re-record a diff; matching ignores it.
        request.uri = _LOOPBACK_PORT.sub(r"\1", scrub(request.uri, secrets))
        request.headers.pop("host", None)
        if isinstance(request.body, bytes):
            # A token request's assertion or refresh token, whatever made it.
            request.body = scrub_token_fields(request.body)
        if secrets:
            for name, value in list(request.headers.items()):
                request.headers[name] = scrub(value, secrets)
            if isinstance(request.body, bytes):
                request.body = scrub_bytes(request.body, secrets)
            elif isinstance(request.body, str):
                request.body = scrub(request.body, secrets)
        return request

    def response_filter(response: dict[str, Any]) -> dict[str, Any]:
        headers = response.get("headers") or {}
        response["headers"] = {
            k: v for k, v in headers.items() if k.lower() not in _VOLATILE_RESPONSE_HEADERS
        }
        body = response.get("body") or {}
        if isinstance(body.get("string"), bytes):
            # The access token a token endpoint answered: replayed, "<secret>" works as well.
            body["string"] = scrub_token_fields(body["string"])
            if secrets:
                body["string"] = scrub_bytes(body["string"], secrets)
        return response

    return request_filter, response_filter


class _RecordAfresh(FilesystemPersister):
    """While re-recording, the committed cassette is not read: vcrpy's "all" mode would keep
    its interactions and write them again beside the new ones, so a cassette would grow with
    every re-record."""

    @classmethod
    def load_cassette(cls, cassette_path: Any, serializer: Any) -> Any:
        if recording():
            raise CassetteNotFoundError()
        return super().load_cassette(cassette_path, serializer)


def plugin_vcr(cassette_dir: str | Path, *, secrets: Sequence[str] = (), **overrides: Any
               ) -> vcr.VCR:
    """A vcrpy `VCR` writing to `cassette_dir` (tests/plugins/<name>/cassettes); `secrets`
    are values to replace wherever they appear (`crossdock.redact.secret_values(settings)`)."""
    request_filter, response_filter = _scrubber(secrets)
    options: dict[str, Any] = {
        "cassette_library_dir": str(cassette_dir),
        "record_mode": record_mode(),
        "match_on": ("method", "path", "query", "body"),
        "filter_headers": FILTERED_HEADERS,
        "filter_query_parameters": FILTERED_QUERY + VOLATILE_QUERY,
        "before_record_request": request_filter,
        "before_record_response": response_filter,
        # The contract fakes live on 127.0.0.1: loopback traffic is exactly what we record.
        "ignore_localhost": False,
        "decode_compressed_response": True,
    }
    options.update(overrides)
    recorder = vcr.VCR(**options)
    recorder.register_persister(_RecordAfresh)
    return recorder

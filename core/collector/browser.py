"""What browser SDKs ask of the collector besides the long Segment paths (docs/sources.md):
the short paths analytics.js posts to, RudderStack's beacon path, the settings each SDK loads
before its first call, and the first-party snippet crossdock.js.

- `POST /v1/t`, `/v1/i`, `/v1/p`, `/v1/s`, `/v1/g`, `/v1/a`: analytics.js, one call each
  (`{apiHost}/` and the first letter of its type);
- `POST /v1/b`: analytics.js with `deliveryStrategy: batching`, `{writeKey, batch, sentAt}`;
- `POST /beacon/v1/batch?writeKey=...`: RudderStack's BeaconQueue, `{batch, sentAt}` as
  text/plain;
- `GET /v1/projects/{writeKey}/settings`: analytics.js's settings (its `cdnURL`), the
  collector as its API host;
- `GET /sourceConfig/?writeKey=...`: RudderStack v3's source config (its `configUrl`);
- `GET /crossdock.js`: the snippet (static/crossdock.js).

The tracking paths are answered by the same Collector methods as /v1/<type> and /v1/batch.
Both settings answers load no destination into the page (analytics.js gets only its
`Segment.io` integration; RudderStack gets an empty `destinations`), so a page talks to the
collector and nothing else; analytics.js's own usage metrics to Segment are switched off
(`metrics.sampleRate: 0`) and so are RudderStack's error and metrics reports.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from fastapi import FastAPI, Query, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from crossdock.collector.auth import Credential
from crossdock.collector.cors import OriginPolicy
from crossdock.collector.user_api import ErrorResponse
from crossdock.models import MESSAGE_TYPES

#: analytics.js posts each call to `{apiHost}/` + the first letter of its type; apiHost ends
#: in /v1 (Segment's own is `api.segment.io/v1`)
SHORT_PATHS: dict[str, str] = {f"/v1/{kind[0]}": kind for kind in MESSAGE_TYPES}
#: analytics.js's batching delivery strategy
SHORT_BATCH_PATH = "/v1/b"
#: RudderStack's BeaconQueue plugin: sendBeacon to `{dataPlaneUrl}/beacon/v1/batch?writeKey=`
BEACON_PATH = "/beacon/v1/batch"
SEGMENT_SETTINGS_PATH = "/v1/projects/{write_key}/settings"
#: RudderStack asks for `{configUrl}/sourceConfig/?p=...&writeKey=...` (with the slash)
RUDDERSTACK_CONFIG_PATHS = ("/sourceConfig", "/sourceConfig/")
SNIPPET_PATH = "/crossdock.js"

#: the OpenAPI answer of an origin refused (cors.py)
ORIGIN_REFUSED: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorResponse, "description": "an origin the write key does not list"}}
_SETTINGS_REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "an unknown write key"}, **ORIGIN_REFUSED}

_BROWSER_PATHS = frozenset({*(f"/v1/{kind}" for kind in MESSAGE_TYPES), "/v1/batch",
                            *SHORT_PATHS, SHORT_BATCH_PATH, BEACON_PATH,
                            *RUDDERSTACK_CONFIG_PATHS})


def is_browser_path(path: str) -> bool:
    """Whether a path is one a web page calls, and so answers with CORS headers."""
    return path in _BROWSER_PATHS or (path.startswith("/v1/projects/")
                                      and path.endswith("/settings"))


def snippet() -> Path:
    """crossdock.js as shipped in the package."""
    return Path(str(resources.files("crossdock.collector") / "static" / "crossdock.js"))


def segment_settings(write_key: str, collector_url: str) -> dict[str, Any]:
    """analytics.js's settings for `write_key` (what Segment's CDN serves at
    /v1/projects/{writeKey}/settings): the collector at `collector_url` as its API host."""
    parts = urlsplit(collector_url)
    return {
        "integrations": {"Segment.io": {
            "apiKey": write_key,
            # analytics.js adds the scheme itself, from `protocol`
            "apiHost": f"{parts.netloc}{parts.path.rstrip('/')}/v1",
            "protocol": parts.scheme,
        }},
        # analytics.js reports its own usage to api.segment.io unless sampled out
        "metrics": {"sampleRate": 0},
        "remotePlugins": [],
        "enabledMiddleware": {},
    }


def rudderstack_source_config(write_key: str, source_id: str) -> dict[str, Any]:
    """RudderStack's v3 source config for `write_key` (what its control plane serves at
    /sourceConfig): an enabled source with no device-mode destinations and no reports."""
    return {"source": {
        "id": source_id,
        "name": "crossdock",
        "writeKey": write_key,
        "workspaceId": "crossdock",
        "enabled": True,
        "config": {"statsCollection": {"errors": {"enabled": False},
                                       "metrics": {"enabled": False}}},
        "destinations": [],
    }}


class BrowserCollector(Protocol):
    """What the routes here ask of the collector (app.Collector)."""

    origins: OriginPolicy

    def browser_source(self, request: Request,
                       write_key: str | None) -> tuple[Credential, str]: ...


def add_routes(app: FastAPI, collector: BrowserCollector, tracking: dict[str, str],
               segment_endpoint: Callable[[str], Callable[[Request], Any]],
               batch: Callable[[Request], Any]) -> None:
    """The browser SDKs' tracking paths, answered by the long paths' endpoints
    (`segment_endpoint(kind)`, `batch`) and added to `tracking` (path -> message type, for
    app.DirectTracking); the settings both SDKs load; crossdock.js; and the CORS preflight of
    every browser path."""
    # Aliases of the long paths, the same endpoints taking the same bodies: docs/sources.md
    # lists them; the OpenAPI spec describes each operation once.
    for path, kind in SHORT_PATHS.items():
        app.add_api_route(path, segment_endpoint(kind), methods=["POST"],
                          include_in_schema=False)
        tracking[path] = kind
    for path in (SHORT_BATCH_PATH, BEACON_PATH):
        app.add_api_route(path, batch, methods=["POST"], include_in_schema=False)
        tracking[path] = "batch"

    @app.get(SEGMENT_SETTINGS_PATH, tags=["browser"],
             summary="analytics.js's settings: the collector as its API host",
             responses=_SETTINGS_REFUSED, openapi_extra={"security": []})
    async def analytics_js_settings(write_key: str, request: Request) -> Response:
        _, url = collector.browser_source(request, write_key)
        return JSONResponse(segment_settings(write_key, url))

    async def rudderstack_config(
        request: Request, write_key: Annotated[str | None, Query(alias="writeKey")] = None,
    ) -> Response:
        credential, _ = collector.browser_source(request, write_key)
        return JSONResponse(rudderstack_source_config(write_key or "",
                                                      f"crossdock-{credential.key_id}"))

    for path in RUDDERSTACK_CONFIG_PATHS:
        app.add_api_route(path, rudderstack_config, methods=["GET"], tags=["browser"],
                          include_in_schema=path.endswith("/"),
                          summary="RudderStack's source config: no destinations in the page",
                          responses=_SETTINGS_REFUSED, openapi_extra={"security": []})

    @app.get(SNIPPET_PATH, tags=["browser"], summary="crossdock.js, the snippet",
             openapi_extra={"security": []})
    async def crossdock_js() -> Response:
        return FileResponse(snippet(), media_type="text/javascript; charset=utf-8",
                            headers={"Cache-Control": "public, max-age=3600"})

    async def preflight(request: Request) -> Response:
        headers = collector.origins.preflight(
            request.headers.get("origin"), request.headers.get("access-control-request-headers"))
        return Response(status_code=204, headers=headers)

    for path in [*tracking, SEGMENT_SETTINGS_PATH, *RUDDERSTACK_CONFIG_PATHS]:
        app.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)

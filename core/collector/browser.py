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

from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

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

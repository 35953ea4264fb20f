"""Constants of the Facebook Custom Audience destination (from Meta's Marketing API docs)."""

from __future__ import annotations

PLUGIN_NAME = "facebook_audience"
DEFAULT_GRAPH_URL = "https://graph.facebook.com"
#: the current Graph API version when this was written (released 2026-07-29; v21.0, the
#: version pinned before, is available until 2027-01-21), from Meta's changelog:
#: https://developers.facebook.com/docs/graph-api/changelog
DEFAULT_API_VERSION = "v26.0"
#: how long Meta accepts a time-bound appsecret_proof (appsecret_time): 5 minutes
APPSECRET_TIME_WINDOW = 5 * 60
#: Meta takes at most 10,000 users per request
MAX_USERS_PER_REQUEST = 10_000
#: the track events the audience engine emits (docs/destinations/facebook_audience.md)
AUDIENCE_ENTERED = "audience_entered"
AUDIENCE_EXITED = "audience_exited"

#: Graph error codes, as Meta documents them for Custom Audience uploads
THROTTLE_CODES = frozenset({4, 17, 613, *range(80000, 80015)})
TRANSIENT_CODES = frozenset({1, 2})
PERMANENT_CODES = frozenset({100, 105, 200, 294, 2650, 1487301, 1487366})
TOKEN_INVALID_CODE = 190

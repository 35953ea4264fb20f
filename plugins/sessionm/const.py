"""Constants of the SessionM destination."""

from __future__ import annotations

PLUGIN_NAME = "sessionm"
DEFAULT_HOST = "https://api.sessionm.com"
#: every path lives under this prefix (SessionM's private app API)
API_PREFIX = "/priv/v1/apps/{api_key}"
USER_AGENT = "Crossdock-SessionM/0.1"

#: SessionM refuses an event carrying more attributes than this
MAX_EVENT_ATTRIBUTES = 10
#: SessionM keeps at most this many custom user attributes
MAX_USER_ATTRIBUTES = 200

#: the external id type under which a person's Crossdock id is stored in SessionM
EXTERNAL_ID_TYPE = "crossdock"
#: the routed identity that carries Crossdock's own person id
PROFILE_IDENTITY = "profileId"

#: user fields SessionM keeps on the user itself rather than as custom attributes; the mapping
#: renames mParticle's reserved attributes ($FirstName ...) onto these names
STANDARD_USER_FIELDS = frozenset(
    {"first_name", "last_name", "gender", "country", "state", "city", "zip", "address"}
)

EVENT_TYPE_CUSTOM = "custom"
EVENT_TYPE_SCREEN_VIEW = "screen_view"

# Error codes of an HTTP 200 {"status": "error", "errors": {"code": ...}} reply.
CODE_USER_NOT_FOUND = "USER_NOT_FOUND"
CODE_INVALID_API_KEY = "INVALID_API_KEY"
CODE_REQUIRES_REGISTERED_USER = "REQUIRES_REGISTERED_USER"
CODE_MISSING_DATA = "MISSING_DATA"
CODE_VALIDATION = "VALIDATION"
CODE_INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"
#: the only error codes worth trying again; every other code is permanent
RETRYABLE_CODES = frozenset({CODE_INTERNAL_SERVER_ERROR})

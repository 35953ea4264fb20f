"""Constants of the generic webhook destination."""

from __future__ import annotations

PLUGIN_NAME = "webhook"
#: the most routed messages one {"batch": [...]} request carries
MAX_BATCH_SIZE = 100
USER_AGENT = "Crossdock-Webhook/0.1"

# Standard Webhooks (https://www.standardwebhooks.com/) header names.
HEADER_ID = "webhook-id"
HEADER_TIMESTAMP = "webhook-timestamp"
HEADER_SIGNATURE = "webhook-signature"
# Segment-style receivers verify a hex HMAC of the raw body.
HEADER_X_SIGNATURE = "x-signature"
#: the prefix of a Standard Webhooks secret whose remainder is the base64-encoded key
SECRET_PREFIX = "whsec_"

#: headers Crossdock sets itself; an operator's `headers:` may not override them
RESERVED_HEADERS = frozenset(
    {HEADER_ID, HEADER_TIMESTAMP, HEADER_SIGNATURE, HEADER_X_SIGNATURE, "content-type",
     "content-length", "host", "transfer-encoding"}
)

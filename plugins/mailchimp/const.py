"""Constants of the Mailchimp destination (Mailchimp Marketing API v3 docs)."""

from __future__ import annotations

import re

PLUGIN_NAME = "mailchimp"
#: batch subscribe takes at most 500 members per call
MAX_BATCH_MEMBERS = 500
#: Mailchimp allows 10 concurrent connections per API key
MAX_CONNECTIONS = 10
#: a batch subscribe answers with every member's full record (about 3 KB each, 1.5 MB for
#: 500), and its outcomes are read from all of it: the engine reads up to this much
MAX_RESPONSE_BYTES = 8 << 20
AUDIENCE_ENTERED = "audience_entered"
AUDIENCE_EXITED = "audience_exited"
#: event names: 2 to 30 letters, digits, underscores and dashes
EVENT_NAME_MIN, EVENT_NAME_MAX = 2, 30
EVENT_NAME = re.compile(r"^[A-Za-z0-9_-]{2,30}$")
MEMBER_STATUSES = frozenset({"subscribed", "unsubscribed", "cleaned", "pending",
                             "transactional"})
#: 400 titles that never succeed on a retry
PERMANENT_TITLES = frozenset({"Invalid Resource", "Member In Compliance State",
                              "Forgotten Email Not Subscribed"})
ADDRESS_REQUIRED = ("addr1", "city", "state", "zip")

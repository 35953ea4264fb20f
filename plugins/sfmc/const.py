"""Constants of the Salesforce Marketing Cloud destination (developer.salesforce.com; each
rule's source is on docs/destinations/sfmc.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "sfmc"
#: the tenant's Authorization Base URI, from its subdomain (Installed Packages shows it)
AUTH_BASE = "https://{subdomain}.auth.marketingcloudapis.com"
#: the token route appended to the Authorization Base URI (server-to-server integrations)
TOKEN_PATH = "/v2/token"
#: the token answer's field holding the tenant's REST base URI
REST_BASE_FIELD = "rest_instance_url"
#: a tenant subdomain: letters, digits and hyphens
SUBDOMAIN = re.compile(r"^[A-Za-z0-9-]+$")

#: data extension rows upserted in one synchronous call, by external key
ROWSET_PATH = "/hub/v1/dataevents/key:{key}/rowset"
#: Journey Builder entry events
EVENTS_PATH = "/interaction/v1/events"
#: rows per rowset call: Salesforce's best practice (at most 50 records and 50 columns)
MAX_ROWS = 50
MAX_COLUMNS = 50
#: the most a rowset call's body may weigh
MAX_PAYLOAD_BYTES = 5 * 1024 * 1024
#: "Unable to save rows for data extension": without additionalErrors a passing lock (retried)
SAVE_FAILED = 10006

#: the steps, so `classify` reads each answer by what asked for it
ROWSET, EVENT = "rowset", "event"

"""Constants of the Google Ads destination (developers.google.com/google-ads/api; each rule's
source is on docs/destinations/google_ads.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "google_ads"
API_BASE = "https://googleads.googleapis.com"
TOKEN_URL = "https://oauth2.googleapis.com/token"
#: the API version the requests name (each is sunset about a year after its release)
DEFAULT_VERSION = "v26"
VERSION = re.compile(r"^v\d{2}$")
#: a customer id as the API takes it: ten digits, no hyphens
CUSTOMER_ID = re.compile(r"^\d{10}$")

CREATE_JOB = "/{version}/customers/{cid}/offlineUserDataJobs:create"
ADD_OPERATIONS = "/{version}/{job}:addOperations"
RUN_JOB = "/{version}/{job}:run"
UPLOAD_CONVERSIONS = "/{version}/customers/{cid}:uploadClickConversions"

#: the audience engine's membership events (docs/audiences.md)
AUDIENCE_ENTERED, AUDIENCE_EXITED = "audience_entered", "audience_exited"
#: user identifiers one operation may carry
MAX_IDENTIFIERS = 20
#: operations one addOperations call may carry
MAX_OPERATIONS = 100_000
#: operations per job the plugin sends (Google recommends about 10,000 per request)
OPERATIONS_PER_JOB = 10_000
#: conversions one uploadClickConversions call may carry
MAX_CONVERSIONS = 2000

#: the steps, so `classify` reads each answer by what asked for it
CREATE, ADD, RUN, CONVERSIONS = "create", "add", "run", "conversions"

"""Constants of the Amplitude destination (amplitude.com/docs/apis/analytics/...; each rule's
source is on docs/destinations/amplitude.md)."""

from __future__ import annotations

PLUGIN_NAME = "amplitude"

#: the event ingestion hosts by data residency (HTTP V2 and Identify pages, "Regions")
HOSTS = {"us": "https://api2.amplitude.com", "eu": "https://api.eu.amplitude.com"}
EVENTS_PATH = "/2/httpapi"
IDENTIFY_PATH = "/identify"

#: the most events one HTTP V2 request takes (more: 413)
MAX_EVENTS = 2000
#: "keep request sizes under 1 MB": a body of this many bytes or more is refused (413)
MAX_BYTES = 1_000_000
#: what the plugin puts in one request unless the operator's delivery.batch_size says more
DEFAULT_BATCH = 100
#: user_id and device_id are at least this long unless the request's options say otherwise
DEFAULT_MIN_ID_LENGTH = 5

#: seconds to pause a throttled user or device: 30 for events (FAQ "Which API should I use?"),
#: 15 for the Identify API (its page)
EVENTS_PAUSE = 30.0
IDENTIFY_PAUSE = 15.0
#: events per second per user_id or device_id past which HTTP V2 answers 429
EPS_THRESHOLD = 30

#: the user property operations Amplitude knows (Identify page, "user_properties")
OPERATIONS = frozenset({"$set", "$setOnce", "$add", "$append", "$prepend", "$unset",
                        "$preInsert", "$postInsert", "$remove", "$clearAll"})
#: the value $unset takes for each property it removes
UNSET_VALUE = "-"

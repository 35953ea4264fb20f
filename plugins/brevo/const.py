"""Constants of the Brevo destination (developers.brevo.com; each rule's source is on
docs/destinations/brevo.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "brevo"
DEFAULT_BASE_URL = "https://api.brevo.com/v3"

CONTACTS_PATH = "/contacts"
CONTACT_PATH = "/contacts/{identifier}"
DOI_PATH = "/contacts/doubleOptinConfirmation"
EVENTS_PATH = "/events"

#: the header that carries the API key
API_KEY_HEADER = "api-key"
#: a Brevo SMTP key starts so: it authenticates SMTP relays, never API v3 calls
SMTP_KEY_PREFIX = "xsmtpsib-"

#: event names and event property keys: at most 255 characters, letters, digits, - and _
MAX_NAME_LENGTH = 255
NAME = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
NOT_NAME_CHARACTER = re.compile(r"[^A-Za-z0-9_-]")
#: the most an event's properties may weigh (JSON bytes)
MAX_EVENT_PROPERTIES_BYTES = 50 * 1024
#: contact attribute names as Brevo defines them: upper case
ATTRIBUTE_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
#: the attribute that holds a contact's mobile number
SMS_ATTRIBUTE = "SMS"
#: the identifiers an event names its contact by, in Brevo's words
EVENT_IDENTIFIERS = ("contact_id", "email_id", "ext_id", "phone_id", "whatsapp_id",
                     "landline_number_id")

#: the rate-limit buckets: every /v3/contacts endpoint shares one, POST /v3/events has its own
CONTACTS_BUCKET, EVENTS_BUCKET = "contacts", "events"
#: the general tier (every plan): requests per second and per hour in each bucket
GENERAL_LIMITS = {CONTACTS_BUCKET: (10, 36_000), EVENTS_BUCKET: (10, 36_000)}
RATELIMIT_HEADERS = ("x-sib-ratelimit-limit", "x-sib-ratelimit-remaining",
                     "x-sib-ratelimit-reset")

#: Brevo's error codes (the `code` of an error body) that no retry can change
PERMANENT_CODES = frozenset({
    "invalid_parameter", "missing_parameter", "out_of_range", "document_not_found",
    "reseller_permission_denied", "not_enough_credits", "permission_denied",
    "duplicate_parameter", "duplicate_request", "method_not_allowed", "unauthorized",
    "account_under_validation", "not_acceptable", "bad_request"})

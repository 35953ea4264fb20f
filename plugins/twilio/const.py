"""Constants of the Twilio destination (twilio.com/docs; each rule's source is on
docs/destinations/twilio.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "twilio"
DEFAULT_BASE_URL = "https://api.twilio.com"
API_VERSION = "2010-04-01"
MESSAGES_PATH = "/2010-04-01/Accounts/{account_sid}/Messages.json"

ACCOUNT_SID = re.compile(r"^AC[0-9a-fA-F]{32}$")
API_KEY_SID = re.compile(r"^SK[0-9a-fA-F]{32}$")
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")
#: a short code: 3 to 8 digits
SHORT_CODE = re.compile(r"^\d{3,8}$")
#: an alphanumeric sender id: up to 11 letters, digits and spaces, one letter at least
ALPHANUMERIC_SENDER = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9 ]{1,11}$")

#: the longest Body of an outgoing message, in characters
MAX_BODY_LENGTH = 1600
#: the longest StatusCallback URL
MAX_CALLBACK_LENGTH = 4000

#: the messages read back before sending again (the list is newest first): an earlier
#: attempt's message is among the person's latest
LOOKUP_PAGE_SIZE = 50
#: seconds before the outbox row was made that a message found still counts as its own
#: (clocks differ between this host and Twilio)
LOOKUP_SKEW = 300.0

#: Twilio's error codes
AUTHENTICATE = 20003
TOO_MANY_REQUESTS = 20429
#: errors that say the recipient cannot be sent to: no retry changes them
RECIPIENT_ERRORS = {
    21211: "invalid 'To' phone number",
    21608: "'To' number not verified (trial account)",
    21610: "the recipient unsubscribed (replied STOP)",
    21612: "'To' number cannot be reached from this sender",
    21614: "'To' number is not a mobile number",
    21635: "'To' number is a landline",
}

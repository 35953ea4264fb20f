"""Constants of the MailUp destination (help.mailup.com, the MailUp REST API pages; each rule's
source is on docs/destinations/mailup.md)."""

from __future__ import annotations

PLUGIN_NAME = "mailup"
#: the REST API's console service, every Console/... path is relative to it
DEFAULT_BASE_URL = "https://services.mailup.com/API/v1.1/Rest/ConsoleService.svc"
#: MailUp's authorization server: the password grant and the refresh token grant
DEFAULT_TOKEN_URL = "https://services.mailup.com/Authorization/OAuth/Token"

#: add (or update) one recipient synchronously, subscribing it to the list or the group's list
LIST_RECIPIENT_PATH = "/Console/List/{list}/Recipient"
GROUP_RECIPIENT_PATH = "/Console/Group/{group}/Recipient"
#: the list's subscribed recipients, filtered (OData-like filterby)
SUBSCRIBED_PATH = "/Console/List/{list}/Recipients/Subscribed"
#: unsubscribe one recipient, by its id, from a list
UNSUBSCRIBE_PATH = "/Console/List/{list}/Unsubscribe/{recipient}"
#: the account's personal data fields (their ids and names)
DYNAMIC_FIELDS_PATH = "/Console/Recipient/DynamicFields"

#: personal data field ids: 1 to 39 (26 by default with Marketing+, up to 39)
MIN_FIELD_ID, MAX_FIELD_ID = 1, 39
#: a personal data field is an nvarchar(200)
MAX_FIELD_LENGTH = 200
#: the lifetime the token answer states (expires_in) on MailUp's examples
TOKEN_LIFETIME = 3600

#: the steps of a recipient's flow, so `classify` reads each answer by what asked for it
SUBSCRIBE, LOOKUP, UNSUBSCRIBE = "subscribe", "lookup", "unsubscribe"

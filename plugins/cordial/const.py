"""Constants of the Cordial destination (support.cordial.com API articles; each rule's source is
on docs/destinations/cordial.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "cordial"
#: the API URL of accounts at admin.cordial.io (usw2.admin.cordial.io: api.usw2.cordial.io/v2)
DEFAULT_BASE_URL = "https://api.cordial.io/v2"

CONTACTS_PATH = "/contacts"
CONTACT_PATH = "/contacts/{key}"
ACTIVITIES_PATH = "/contactactivities"

#: a contact's subscribe status on a channel
SUBSCRIBED, UNSUBSCRIBED, NONE = "subscribed", "unsubscribed", "none"
SUBSCRIBE_STATUSES = frozenset({SUBSCRIBED, UNSUBSCRIBED, NONE})
#: the channels a contact has, each with the consent purpose that decides its status
CHANNEL_CONSENT = {"email": "email", "sms": "sms"}

#: the longest action name (`a`) of a contact activity
MAX_ACTION_LENGTH = 40
#: actions Cordial records itself, which cannot be posted
RESERVED_ACTIONS = frozenset({"message-sent", "open", "click", "optout", "bounce",
                              "complaint", "pageview", "message-stopped"})
#: activity property keys Cordial strips: numbers only, or holding a dot
STRIPPED_KEY = re.compile(r"^\d+$|\.")

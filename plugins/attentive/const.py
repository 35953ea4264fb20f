"""Constants of the Attentive destination (docs.attentive.com API reference; each rule's source
is on docs/destinations/attentive.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "attentive"
DEFAULT_BASE_URL = "https://api.attentivemobile.com"

SUBSCRIBE_PATH = "/v1/subscriptions"
UNSUBSCRIBE_PATH = "/v1/subscriptions/unsubscribe"
CUSTOM_EVENTS_PATH = "/v1/events/custom"
CUSTOM_ATTRIBUTES_PATH = "/v1/attributes/custom"
IDENTITY_PATH = "/v1/identity-resolution/user-identifiers"
ECOMMERCE_PATH = "/v1/events/ecommerce/{kind}"
#: the three e-commerce events Attentive takes, by their path segment
ECOMMERCE_KINDS = ("product-view", "add-to-cart", "purchase")

#: characters a custom event's `type` must not contain
EVENT_TYPE_FORBIDDEN = frozenset("\"'(){}[]\\|,")
#: characters a custom event property's key must not contain
PROPERTY_KEY_FORBIDDEN = frozenset("\"{}[]\\|")
#: the longest custom attribute name
MAX_ATTRIBUTE_NAME = 200
#: the longest email, client user id or custom identifier the Identity API takes
MAX_IDENTIFIER_LENGTH = 100
#: phone numbers are E.164: "+", a non-zero digit, at most 15 digits in all
E164 = re.compile(r"^\+[1-9]\d{1,14}$")

#: requests per second per endpoint and token, the most endpoints take
RATE_LIMIT = 150.0
#: the lower limits of some endpoints (requests per second)
ENDPOINT_RATE_LIMITS = {SUBSCRIBE_PATH: 10.0, IDENTITY_PATH: 10.0, UNSUBSCRIBE_PATH: 5.0}

#: the consent purpose whose answer decides each contact of a subscription
SMS, EMAIL = "sms", "email"

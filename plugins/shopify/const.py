"""Constants of the Shopify destination (shopify.dev GraphQL Admin API reference; each rule's
source is on docs/destinations/shopify.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "shopify"
#: a stable API version (Shopify releases one a quarter and supports each about a year): the
#: operator pins theirs in settings.api_version
DEFAULT_API_VERSION = "2025-10"
GRAPHQL_PATH = "/admin/api/{version}/graphql.json"
#: stable versions are named by the quarter they are released in
API_VERSION = re.compile(r"^20\d\d-(01|04|07|10)$")
#: a store's myshopify.com subdomain
SHOP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,59}$")
#: the longest customer tag
MAX_TAG_LENGTH = 255
#: marketing states a consent update may set (NOT_SUBSCRIBED, REDACTED, INVALID are read-only)
SUBSCRIBED, UNSUBSCRIBED = "SUBSCRIBED", "UNSUBSCRIBED"
SETTABLE_STATES = frozenset({SUBSCRIBED, UNSUBSCRIBED, "PENDING"})
OPT_IN_LEVELS = frozenset({"SINGLE_OPT_IN", "CONFIRMED_OPT_IN", "UNKNOWN"})
AUDIENCE_ENTERED, AUDIENCE_EXITED = "audience_entered", "audience_exited"

#: the documents the plugin sends, by operation
FIND = ("query FindCustomer($query: String!) { customers(first: 1, query: $query) "
        "{ nodes { id tags } } }")
CREATE = ("mutation CreateCustomer($input: CustomerInput!) { customerCreate(input: $input) "
          "{ customer { id } userErrors { field message } } }")
UPDATE = ("customerUpdate(input: $input) { customer { id } userErrors { field message } }")
EMAIL_CONSENT = ("customerEmailMarketingConsentUpdate(input: $email) "
                 "{ userErrors { field message code } }")
SMS_CONSENT = ("customerSmsMarketingConsentUpdate(input: $sms) "
               "{ userErrors { field message code } }")
TAGS_ADD = ("mutation AddTags($id: ID!, $tags: [String!]!) { tagsAdd(id: $id, tags: $tags) "
            "{ userErrors { field message } } }")
TAGS_REMOVE = ("mutation RemoveTags($id: ID!, $tags: [String!]!) { tagsRemove(id: $id, "
               "tags: $tags) { userErrors { field message } } }")

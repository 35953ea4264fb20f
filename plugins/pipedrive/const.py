"""Constants of the Pipedrive destination (developers.pipedrive.com API v1 and v2 references;
each rule's source is on docs/destinations/pipedrive.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "pipedrive"

PERSONS_PATH = "/api/v2/persons"
PERSON_PATH = "/api/v2/persons/{id}"
SEARCH_PATH = "/api/v2/persons/search"
ACTIVITIES_PATH = "/api/v2/activities"
#: notes have no v2 endpoint yet
NOTES_PATH = "/api/v1/notes"

#: a retried event reads back this many of the person's newest notes or activities to find
#: the one an earlier attempt may have added (Pipedrive takes no idempotency key)
LOOKUP_LIMIT = 50

#: the header API tokens go in (v2 takes no api_token query parameter)
TOKEN_HEADER = "x-api-token"
#: the OAuth token endpoint (an app's refresh token for access tokens), and the field of its
#: answer naming the company's API host
DEFAULT_TOKEN_URL = "https://oauth.pipedrive.com/oauth/token"
API_DOMAIN_FIELD = "api_domain"

#: custom fields are referenced by randomly generated 40-character hashes
CUSTOM_FIELD_KEY = re.compile(r"^[0-9a-f]{40}$")
#: a company domain: the subdomain of pipedrive.com the account lives on
COMPANY_DOMAIN = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
#: who may see a person: owner & followers, entire company, owner's visibility group, company
VISIBLE_TO = (1, 3, 5, 7)
#: a person's marketing status (the Campaigns product)
MARKETING_STATUSES = ("no_consent", "unsubscribed", "subscribed", "archived")
#: the activity types every company has (their key_string)
DEFAULT_ACTIVITY_TYPES = frozenset({"call", "meeting", "task", "deadline", "email", "lunch"})

#: the search term's shortest length (1 with exact_match)
MIN_SEARCH_TERM = 2
#: requests per 2-second window per API token on the Search API, on every plan
SEARCH_BURST = 10
#: what a request costs of the company's daily token budget (apis.io's summary of
#: Pipedrive's table; v2 endpoints may cost less)
COST_SEARCH, COST_WRITE, COST_GET = 40, 10, 2
#: the daily budget per seat before the plan's multiplier
BASE_DAILY_BUDGET = 30_000

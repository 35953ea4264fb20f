"""Constants of the Salesforce Commerce Cloud (B2C Commerce) destination: the OCAPI Data API's
customer resource and the Account Manager token route (each rule's source is on
docs/destinations/sfcc.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "sfcc"
#: Account Manager's token endpoint: every B2C Commerce API client gets its tokens here
TOKEN_URL = "https://account.demandware.com/dwsso/oauth2/access_token"
#: the Data API version the requests name (the newest OCAPI version)
DEFAULT_VERSION = "v23_2"
#: an OCAPI version in a URL: v<YY>_<N>
VERSION = re.compile(r"^v\d{2}_\d{1,2}$")
#: a customer update: organization-wide (`/s/-/`), by customer list and customer number
CUSTOMER_PATH = "/s/-/dw/data/{version}/customer_lists/{list_id}/customers/{customer_no}"
#: what a hostname of an instance is made of (zzxy-001.dx.commercecloud.salesforce.com)
HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")

#: the customer number's most characters (Customer document: customer_no maxLength=100)
MAX_CUSTOMER_NO = 100
#: the Customer document's writable properties and what each takes: text of at most N
#: characters, a LocalDate (yyyy-mm-dd) or an Integer (gender)
TEXT_PROPERTIES: dict[str, int] = {
    "email": 256, "first_name": 256, "second_name": 256, "last_name": 256,
    "salutation": 256, "title": 256, "suffix": 256, "job_title": 256, "company_name": 256,
    "phone_home": 32, "phone_business": 32, "phone_mobile": 32, "fax": 32,
    "preferred_locale": 256,
}
DATE_PROPERTIES = frozenset({"birthday"})
INTEGER_PROPERTIES = frozenset({"gender"})
WRITABLE = frozenset(TEXT_PROPERTIES) | DATE_PROPERTIES | INTEGER_PROPERTIES
#: the Customer document's properties the platform keeps itself (PropertyNotPermitted)
READ_ONLY = frozenset({"customer_id", "creation_date", "last_modified", "last_login_time",
                       "last_visit_time", "previous_login_time", "previous_visit_time",
                       "global_party_id"})
#: a custom attribute of the Customer system object: c_ and its id
CUSTOM = re.compile(r"^c_[A-Za-z][A-Za-z0-9_]*$")
#: gender as B2C Commerce stores it: 1 male, 2 female
GENDERS = {"1": 1, "m": 1, "male": 1, "man": 1, "2": 2, "f": 2, "female": 2, "woman": 2}
#: the most a request body may weigh (RequestEntityTooLargeException)
MAX_BODY_BYTES = 5 * 1024 * 1024

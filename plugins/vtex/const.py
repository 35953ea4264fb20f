"""Constants of the VTEX Master Data destination (developers.vtex.com Master Data API
references; each rule's source is on docs/destinations/vtex.md)."""

from __future__ import annotations

import re

PLUGIN_NAME = "vtex"
#: the environment of a store's API host, https://{accountName}.{environment}.com.br
DEFAULT_ENVIRONMENT = "vtexcommercestable"
#: the data entity of customer profiles (Master Data v1 "Cliente")
DEFAULT_DATA_ENTITY = "CL"

#: "Create or update partial document": matched by `id` or by a field with a unique index
#: (email on CL), else created
DOCUMENTS_PATH = "/api/dataentities/{entity}/documents"
#: the media type Master Data answers in (the Accept header its reference names)
ACCEPT = "application/vnd.vtex.ds.v10+json"
#: the longest value of a CL text field (createUpdateProfileRequests: maxLength 300)
MAX_FIELD_LENGTH = 300

#: a VTEX account name and an environment: the labels of the API host
HOST_LABEL = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
#: a data entity's acronym (v1, "CL") or name (v2): letters, digits and _
ENTITY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")
#: a document field's name
FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

"""The VTEX Master Data destination: each identify upserts the person's document in a data
entity (CL, the customer profiles, by default) through Master Data's "Create or update partial
document":

    identify   PATCH https://{account}.{environment}.com.br/api/dataentities/CL/documents
               {"email": ..., "firstName": ..., "phone": "+55...", "isNewsletterOptIn": true}

Master Data matches the document by its `id` or by a field with a unique index (email on CL)
and updates only the fields sent; a person it does not know is created. So one request is the
whole upsert, and sending it again is harmless (an unchanged document answers 304).
"""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.destination import (
    DELIVERED,
    Destination,
    Failed,
    FieldRefused,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    http_outcome,
    json_content,
    response_json,
    secret_rate_key,
    short_body,
)
from crossdock.phones import PhoneError
from crossdock.plugins.vtex.const import ACCEPT, DOCUMENTS_PATH, MAX_FIELD_LENGTH, PLUGIN_NAME
from crossdock.plugins.vtex.settings import VtexOptions, VtexSettings


class VtexDestination(Destination[VtexSettings, VtexOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/vtex.md",
        description="VTEX Master Data: customer documents (CL) upserted by email with the "
                    "newsletter opt-in from the email consent",
        message_types=frozenset({"identify"}), auth="api_key")

    def build_item(self, item: OutboxItem) -> list[Planned]:
        """The document's PATCH, after a FieldRefused for each value left out."""
        refused: list[FieldRefused] = []
        body = self.document(item, refused)
        path = DOCUMENTS_PATH.format(entity=self.settings.data_entity)
        request = httpx.Request("PATCH", self.settings.root + path, content=json_content(body),
                                headers=self.headers())
        return [*refused, PlannedRequest(request, [item], self.rate_key())]

    def document(self, item: OutboxItem, refused: list[FieldRefused]) -> dict[str, Any]:
        """The fields sent: the email (the key), the phone, the mapped traits, the opt-in."""
        payload = item.payload
        email = self.opts.email_of(payload)
        if email is None:
            raise ItemRejected("email: a Master Data document is matched by its email "
                               "(the CL entity's unique key); this person has none")
        if len(email) > MAX_FIELD_LENGTH:
            raise ItemRejected(f"email: longer than the {MAX_FIELD_LENGTH} characters Master "
                               "Data keeps")
        body: dict[str, Any] = {"email": email}
        traits = payload.get("traits") or {}
        for trait, name in self.opts.fields.items():
            value = traits.get(trait)
            if name is None or value is None:
                continue
            if isinstance(value, str) and len(value) > MAX_FIELD_LENGTH:
                refused.append(FieldRefused(item, name, f"left out: longer than the "
                                                        f"{MAX_FIELD_LENGTH} characters of a "
                                                        "text field"))
                continue
            if isinstance(value, dict | list):
                refused.append(FieldRefused(item, name, "left out: a document field holds one "
                                                        "value, not an object or a list"))
                continue
            body[name] = value
        if self.opts.phone_field is not None:
            try:
                phone = self.opts.phone_of(payload)
            except PhoneError as exc:
                refused.append(FieldRefused(item, self.opts.phone_field, f"left out: {exc}"))
            else:
                if phone is not None:
                    body[self.opts.phone_field] = phone
        if self.opts.user_id_field is not None and payload.get("userId"):
            body[self.opts.user_id_field] = str(payload["userId"])
        consent = payload.get("consent") or {}
        if self.opts.newsletter_field is not None and isinstance(consent.get("email"), bool):
            # Only a known answer is written: an unknown one leaves the document's as it is.
            body[self.opts.newsletter_field] = consent["email"]
        return body

    def headers(self) -> dict[str, str]:
        return {"x-vtex-api-appkey": self.settings.app_key.get_secret_value(),
                "x-vtex-api-apptoken": self.settings.app_token.get_secret_value(),
                "content-type": "application/json", "accept": ACCEPT}

    def rate_key(self) -> str:
        """Master Data limits each account: one rate key per account and key (hashed)."""
        return secret_rate_key(f"vtex:{self.settings.account_name}",
                               self.settings.app_key.get_secret_value())

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        status = response.status_code
        if status == 304:
            # "Not Modified": the document already holds these values.
            return DELIVERED
        message = (response_json(response) or {}).get("Message")
        said = message if isinstance(message, str) and message else short_body(response)
        if status == 401:
            return Failed(f"bad credentials (HTTP 401): {said}")
        if status == 403:
            return Failed(f"the API key may not write documents (HTTP 403: its role needs "
                          f"'Insert or update document (not remove)'): {said}")
        if 400 <= status < 500 and status not in (408, 425, 429):
            return Failed(f"HTTP {status}: {said}")
        return http_outcome(response)

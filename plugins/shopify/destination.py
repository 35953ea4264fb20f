"""The Shopify destination: customers created or updated through the GraphQL Admin API, their
email and SMS marketing consent from ours, and tags from our audiences.

    every message   POST /admin/api/{version}/graphql.json  FindCustomer (customers by email)
    identify        then CreateCustomer (customerCreate, with both consents) when none was
                    found, else UpdateCustomer (customerUpdate, and the consent mutations,
                    which customerUpdate does not change, in one document)
    audience_entered / audience_exited
                    then AddTags / RemoveTags (tagsAdd / tagsRemove) on the customer found;
                    a customer entering an audience who is not yet in Shopify is created
                    with the tag; one leaving who is not there has nothing to remove

A flow the engine runs (`FollowUp`): a failure at any step starts again from the search, which
is safe to repeat. Shopify answers most refusals with HTTP 200: a top-level `errors` list (a
query it cannot run; THROTTLED when the cost bucket is short) or a mutation's `userErrors`.
"""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.destination import (
    DELIVERED,
    Destination,
    Failed,
    FieldRefused,
    FollowUp,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    Retry,
    first_value,
    http_outcome,
    json_content,
    response_json,
    secret_rate_key,
    short_body,
)
from crossdock.phones import PhoneError
from crossdock.plugins.shopify.const import (
    AUDIENCE_ENTERED,
    AUDIENCE_EXITED,
    CREATE,
    EMAIL_CONSENT,
    FIND,
    GRAPHQL_PATH,
    MAX_TAG_LENGTH,
    PLUGIN_NAME,
    SMS_CONSENT,
    SUBSCRIBED,
    TAGS_ADD,
    TAGS_REMOVE,
    UNSUBSCRIBED,
    UPDATE,
)
from crossdock.plugins.shopify.settings import ShopifyOptions, ShopifySettings

# The steps of the flows; `classify` reads an answer by the step that asked.
FIND_STEP, CREATE_STEP, UPDATE_STEP, TAGS_STEP = "find", "create", "update", "tags"
#: userError messages of a create that lost a race (the email was taken meanwhile): search again
_TAKEN = ("has already been taken",)
#: top-level error codes Shopify answers that are its own trouble, not the request's
_RETRIED_CODES = frozenset({"THROTTLED", "INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"})


class ShopifyDestination(Destination[ShopifySettings, ShopifyOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/shopify.md",
        description="Shopify: customers created or updated by email (GraphQL Admin API), "
                    "email and SMS marketing consent, tags from audiences",
        message_types=frozenset({"identify", "track"}), auth="api_key")

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> list[Planned]:
        payload = item.payload
        if payload.get("type") == "track":
            self.tag(payload)  # a track that is no audience change is refused before sending
        email = self.email(payload)
        refused: list[tuple[str, str]] = []
        self.phone(payload, refused)
        find = self.graphql(FIND, {"query": f'email:"{email}"'})
        return [*(FieldRefused(item, name, why) for name, why in refused),
                PlannedRequest(find, [item], self.rate_key(), FIND_STEP)]

    def email(self, payload: dict[str, Any]) -> str:
        email = self.opts.email_of(payload)
        # A quote would end the search query's email:"..." term.
        if email is None or '"' in email:
            raise ItemRejected("email: Shopify customers are found and kept by email; this "
                               "person has none")
        return email

    def phone(self, payload: dict[str, Any], refused: list[tuple[str, str]]) -> str | None:
        try:
            return self.opts.phone_of(payload)
        except PhoneError as exc:
            refused.append(("phone", f"left out: {exc}"))
            return None

    def tag(self, payload: dict[str, Any]) -> str:
        event = payload.get("event")
        if event not in (AUDIENCE_ENTERED, AUDIENCE_EXITED):
            raise ItemRejected(f"event: shopify takes only the track events {AUDIENCE_ENTERED} "
                               f"and {AUDIENCE_EXITED} (tags), got {event!r}")
        audience = (payload.get("properties") or {}).get("audience")
        if not isinstance(audience, str) or not audience.strip():
            raise ItemRejected(f"properties.audience: {event} needs the audience's name")
        tag = self.settings.tag_prefix + audience.strip()
        if "," in tag or len(tag) > MAX_TAG_LENGTH:
            raise ItemRejected(f"properties.audience: a tag has no comma and at most "
                               f"{MAX_TAG_LENGTH} characters")
        return tag

    def customer_input(self, payload: dict[str, Any], *, create: bool) -> dict[str, Any]:
        """CustomerInput's fields: the email, names, locale, phone; on create the consents
        (an update sends them through their own mutations)."""
        fields: dict[str, Any] = {"email": self.email(payload)}
        for key, paths in (("firstName", self.opts.first_name),
                           ("lastName", self.opts.last_name), ("locale", self.opts.locale)):
            value = first_value(payload, *paths) if paths else None
            if value is not None:
                fields[key] = str(value)
        phone = self.phone(payload, [])
        if phone is not None:
            fields["phone"] = phone
        if create:
            email_consent, sms_consent = self.consents(payload)
            if email_consent is not None:
                fields["emailMarketingConsent"] = email_consent
            if sms_consent is not None and phone is not None:
                fields["smsMarketingConsent"] = sms_consent
        return fields

    def consents(self, payload: dict[str, Any]
                 ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """The email and SMS marketing consent inputs from our consent; None where the answer
        is not known (Shopify's record stays as it is)."""
        consent = payload.get("consent") or {}
        out: list[dict[str, Any] | None] = []
        for purpose in ("email", "sms"):
            answer = consent.get(purpose)
            if not isinstance(answer, bool):
                out.append(None)
                continue
            state: dict[str, Any] = {"marketingState": SUBSCRIBED if answer else UNSUBSCRIBED}
            if answer:
                state["marketingOptInLevel"] = self.settings.opt_in_level
            if payload.get("timestamp"):
                state["consentUpdatedAt"] = payload["timestamp"]
            out.append(state)
        return out[0], out[1]

    def update_request(self, payload: dict[str, Any], customer_id: str) -> httpx.Request:
        """customerUpdate, and each known consent's own mutation, in one document."""
        variables: dict[str, Any] = {
            "input": {"id": customer_id, **self.customer_input(payload, create=False)}}
        declared = ["$input: CustomerInput!"]
        fields = [UPDATE]
        email_consent, sms_consent = self.consents(payload)
        if email_consent is not None:
            declared.append("$email: CustomerEmailMarketingConsentUpdateInput!")
            fields.append(EMAIL_CONSENT)
            variables["email"] = {"customerId": customer_id,
                                  "emailMarketingConsent": email_consent}
        if sms_consent is not None and "phone" in variables["input"]:
            declared.append("$sms: CustomerSmsMarketingConsentUpdateInput!")
            fields.append(SMS_CONSENT)
            variables["sms"] = {"customerId": customer_id, "smsMarketingConsent": sms_consent}
        document = f"mutation UpdateCustomer({', '.join(declared)}) {{ {' '.join(fields)} }}"
        return self.graphql(document, variables)

    def graphql(self, document: str, variables: dict[str, Any]) -> httpx.Request:
        url = self.settings.root + GRAPHQL_PATH.format(version=self.settings.api_version)
        return httpx.Request("POST", url, content=json_content(
            {"query": document, "variables": variables}), headers={
            "x-shopify-access-token": self.settings.access_token.get_secret_value(),
            "content-type": "application/json", "accept": "application/json"})

    def rate_key(self) -> str:
        """Shopify's cost bucket is per app and store: one rate key per store and token."""
        return secret_rate_key(f"shopify:{self.settings.shop}",
                               self.settings.access_token.get_secret_value())

    def follow(self, request: httpx.Request, step: str) -> FollowUp:
        return FollowUp(request, step, self.rate_key())

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | FollowUp:
        status = response.status_code
        if status in (401, 403):
            return Failed(f"bad credentials (HTTP {status}): {short_body(response)}")
        if status != 200:
            return http_outcome(response)
        body = response_json(response)
        if body is None:
            return Retry(f"HTTP 200 without a GraphQL answer: {short_body(response)}")
        errors = body.get("errors")
        if errors:
            return self.top_level(errors, body)
        data = body.get("data")
        if not isinstance(data, dict):
            return Retry(f"HTTP 200 without data: {short_body(response)}")
        (item,) = planned.items
        payload = item.payload
        if planned.step == FIND_STEP:
            return self.after_find(payload, data)
        problems = _user_errors(data)
        if planned.step == CREATE_STEP and any(t in m for _, m in problems for t in _TAKEN):
            # Created meanwhile (another message of this person): find it, then update.
            return self.follow(self.graphql(FIND, {"query": f'email:"{self.email(payload)}"'}),
                               FIND_STEP)
        if problems:
            return Failed("shopify userErrors: " + "; ".join(
                f"{field or '-'}: {message}" for field, message in problems))
        return DELIVERED

    def after_find(self, payload: dict[str, Any], data: dict[str, Any]) -> Outcome | FollowUp:
        nodes = ((data.get("customers") or {}).get("nodes")) or []
        found = nodes[0].get("id") if nodes and isinstance(nodes[0], dict) else None
        if payload.get("type") == "track":
            tag = self.tag(payload)
            if found is None:
                if payload.get("event") == AUDIENCE_EXITED:
                    return DELIVERED  # not in Shopify: no tag to remove
                fields = {**self.customer_input(payload, create=True), "tags": [tag]}
                return self.follow(self.graphql(CREATE, {"input": fields}), CREATE_STEP)
            document = TAGS_ADD if payload.get("event") == AUDIENCE_ENTERED else TAGS_REMOVE
            return self.follow(self.graphql(document, {"id": found, "tags": [tag]}), TAGS_STEP)
        if found is None:
            return self.follow(self.graphql(CREATE, {
                "input": self.customer_input(payload, create=True)}), CREATE_STEP)
        return self.follow(self.update_request(payload, str(found)), UPDATE_STEP)

    def top_level(self, errors: Any, body: dict[str, Any]) -> Outcome:
        first = errors[0] if isinstance(errors, list) and errors else {}
        first = first if isinstance(first, dict) else {}
        code = (first.get("extensions") or {}).get("code")
        message = str(first.get("message") or errors)[:300]
        if code in _RETRIED_CODES:
            return Retry(f"shopify {code}: {message}", _throttle_wait(body))
        return Failed(f"shopify refused the query ({code or 'error'}): {message}")


def _user_errors(data: dict[str, Any]) -> list[tuple[str, str]]:
    """Each mutation's userErrors as (field path, message)."""
    out: list[tuple[str, str]] = []
    for result in data.values():
        for error in (result or {}).get("userErrors") or []:
            field = error.get("field")
            path = ".".join(str(p) for p in field) if isinstance(field, list) else ""
            out.append((path, str(error.get("message"))))
    return out


def _throttle_wait(body: dict[str, Any]) -> float | None:
    """Seconds until the bucket holds the query's cost: (requested - available) / restore
    rate, from extensions.cost; None when the answer does not say."""
    cost = (body.get("extensions") or {}).get("cost") or {}
    status = cost.get("throttleStatus") or {}
    try:
        requested = float(cost["requestedQueryCost"])
        available = float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return None
    if rate <= 0:
        return None
    return max(0.0, (requested - available) / rate)

"""The Salesforce Commerce Cloud destination: each identify updates one customer of a customer
list through the OCAPI Data API (`PATCH .../customer_lists/{list}/customers/{customer_no}`),
its properties from the mapping. The engine gets the access token (Account Manager, client
credentials) and puts it on each request (docs/destinations/sfcc.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from crossdock.dates import DateError, parse_date
from crossdock.destination import (
    DELIVERED,
    ClientCredentials,
    Destination,
    FieldRefused,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    ValueRefused,
    first_value,
    http_outcome,
    json_request,
    plan_each,
    response_json,
    short_body,
    stringify,
    truncate,
)
from crossdock.plugins.sfcc.const import (
    CUSTOMER_PATH,
    DATE_PROPERTIES,
    GENDERS,
    INTEGER_PROPERTIES,
    MAX_CUSTOMER_NO,
    PLUGIN_NAME,
    TEXT_PROPERTIES,
)
from crossdock.plugins.sfcc.settings import SfccOptions, SfccSettings


class SfccDestination(Destination[SfccSettings, SfccOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/sfcc.md",
        description="Salesforce Commerce Cloud (B2C): customer profiles updated by customer "
                    "number through the OCAPI Data API",
        message_types=frozenset({"identify"}), batch_size=1, auth="oauth2")

    def token_grant(self) -> ClientCredentials:
        s = self.settings
        # Account Manager takes the API client's id and password as HTTP Basic and the grant
        # as a form; the token is for every instance the client may reach, so the API host
        # is the instance setting, not an answer field.
        return ClientCredentials(token_url=str(s.token_url), client_id=s.client_id,
                                 client_secret=s.client_secret, client_auth="basic")

    # -- build -------------------------------------------------------------------------

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        return plan_each(items, self.update)

    def update(self, item: OutboxItem) -> list[Planned]:
        """The PATCH of one customer, after a FieldRefused for each value left out."""
        payload = item.payload
        number = first_value(payload, *self.opts.customer_no)
        if number is None:
            raise ItemRejected("customer_no: none of " + ", ".join(self.opts.customer_no)
                               + " holds a value (options.customer_no)")
        customer_no = str(stringify(number))
        if len(customer_no) > MAX_CUSTOMER_NO:
            raise ItemRejected(f"customer_no: longer than {MAX_CUSTOMER_NO} characters "
                               "(Commerce Cloud's limit)")
        traits = payload.get("traits") or {}
        body: dict[str, Any] = {}
        out: list[Planned] = []
        for trait, prop in self.opts.attributes.items():
            value = traits.get(trait)
            if not prop or value is None:
                continue
            try:
                body[prop] = self.value(prop, value)
            except ValueRefused as refused:
                out.append(FieldRefused(item, prop, refused.reason))
        s = self.settings
        url = s.api_base + CUSTOMER_PATH.format(
            version=s.api_version, list_id=quote(s.customer_list, safe=""),
            customer_no=quote(customer_no, safe=""))
        out.append(PlannedRequest(json_request("PATCH", url, body), [item]))
        return out

    def value(self, prop: str, value: Any) -> Any:
        """A trait's value as the Customer property takes it, or ValueRefused naming the rule."""
        if prop in DATE_PROPERTIES:
            try:
                year, month, day = parse_date(str(value), self.opts.date_order)
            except DateError as exc:
                raise ValueRefused(f"{prop}: {exc}") from None
            return f"{year:04d}-{month:02d}-{day:02d}"
        if prop in INTEGER_PROPERTIES:
            gender = GENDERS.get(str(value).strip().lower())
            if gender is None:
                raise ValueRefused(f"{prop}: Commerce Cloud takes 1 (male) or 2 (female), "
                                   "or male/female")
            return gender
        if prop in TEXT_PROPERTIES:
            text = str(stringify(value)).strip()
            if prop == "preferred_locale":
                text = text.replace("_", "-")  # as Commerce Cloud stores it (en-US)
            if len(text) > TEXT_PROPERTIES[prop]:
                raise ValueRefused(f"{prop}: longer than {TEXT_PROPERTIES[prop]} characters "
                                   "(Commerce Cloud's limit)")
            return text
        # A custom attribute: numbers, booleans and text as they are, the rest as JSON text
        # (its type is the operator's definition in Business Manager).
        if isinstance(value, str | bool | int | float):
            return value
        return stringify(value)

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        if 200 <= response.status_code < 300:
            return DELIVERED
        return http_outcome(response, _reason(response))


def _reason(response: httpx.Response) -> str:
    """`HTTP 404: CustomerNotFoundException: <message>` from an OCAPI fault document, else
    the start of the body."""
    data = response_json(response)
    fault = data.get("fault") if data is not None else None
    if not isinstance(fault, dict) or not isinstance(fault.get("type"), str):
        return f"HTTP {response.status_code}: {short_body(response)}"
    text = f"{fault['type']}: {fault.get('message') or ''}".rstrip(": ")
    return f"HTTP {response.status_code}: {truncate(text, 300)}"


__all__ = ["SfccDestination"]

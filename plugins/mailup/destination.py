"""The MailUp destination: people as recipients of one MailUp list, their traits as personal
data fields, their email consent as the list subscription, through MailUp's REST API with the
access tokens the engine gets (OAuth2: the password grant or the refresh token grant).

    identify, email consent granted
        POST /Console/List/{list}/Recipient?ConfirmEmail=false|true   (or Group/{group}/...)
            adds the recipient and subscribes it (Pending until confirmed with confirm_email),
            or updates the personal data of the recipient with that email
    identify, email consent not granted
        GET  /Console/List/{list}/Recipients/Subscribed?filterby="Email.Contains('…')"
        then DELETE /Console/List/{list}/Unsubscribe/{idRecipient} when it is subscribed

MailUp keys recipients by email and by mobile number (both primary keys): the email is read
first found wins (options.email) and is required; the mobile number goes along; the userId,
which MailUp does not match on, can be written to a personal data field (user_id_field).
MailUp cannot hold a recipient without subscribing it, so a person without the email consent
is never added: a subscribed one is unsubscribed (an unsubscription keeps MailUp's record of
the opt-out, as MailUp recommends over removal), anyone else is left as they are.
"""

from __future__ import annotations

from typing import Any

import httpx

from crossdock.destination import (
    DELIVERED,
    Destination,
    DestinationContext,
    Failed,
    FieldRefused,
    FollowUp,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Password,
    Planned,
    PlannedRequest,
    RefreshToken,
    Retry,
    first_value,
    http_outcome,
    json_request,
    response_json,
    short_body,
    stringify,
    truncate,
)
from crossdock.phones import PhoneError, calling_code
from crossdock.plugins.mailup.const import (
    GROUP_RECIPIENT_PATH,
    LIST_RECIPIENT_PATH,
    LOOKUP,
    MAX_FIELD_LENGTH,
    PLUGIN_NAME,
    SUBSCRIBE,
    SUBSCRIBED_PATH,
    UNSUBSCRIBE,
    UNSUBSCRIBE_PATH,
)
from crossdock.plugins.mailup.settings import MailUpOptions, MailUpSettings

#: subscribers read per lookup: an address is contained in few others' (the answer is checked
#: for the exact address)
LOOKUP_PAGE_SIZE = 100
ACCEPT = {"accept": "application/json"}


class MailUpDestination(Destination[MailUpSettings, MailUpOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/mailup.md",
        description="MailUp: recipients of a list with personal data fields, subscribed or "
                    "unsubscribed by their email consent (double opt-in optional)",
        message_types=frozenset({"identify"}), auth="oauth2")

    def token_grant(self) -> Password | RefreshToken:
        s = self.settings
        # MailUp's token endpoint takes a form with the client's id and secret in it, for
        # either grant (its curl examples); it renews the refresh token at each use.
        if s.refresh_token is not None:
            return RefreshToken(token_url=str(s.token_url), refresh_token=s.refresh_token,
                                client_id=s.client_id, client_secret=s.client_secret,
                                client_auth="body")
        assert s.username is not None and s.password is not None  # the settings' rule
        return Password(token_url=str(s.token_url), username=s.username,
                        password=s.password, client_id=s.client_id,
                        client_secret=s.client_secret, client_auth="body")

    def config_warnings(self, context: DestinationContext) -> list[str]:
        if "email" not in (context.mapping.get("consent") or ()):
            return [f"destinations.{context.name}.mapping.consent: the email consent is not "
                    "read, so no one is ever subscribed (MailUp subscribes every recipient "
                    "it adds; Crossdock adds only people who granted the email consent)"]
        return []

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> list[Planned]:
        payload = item.payload
        email = self.email(payload)
        if not _granted(payload):
            return [PlannedRequest(self.lookup(email), [item], step=LOOKUP)]
        refused: list[tuple[str, str]] = []
        body = self.recipient(payload, email, refused)
        request = json_request("POST", self.recipient_url(), body, headers=ACCEPT)
        return [*(FieldRefused(item, name, why) for name, why in refused),
                PlannedRequest(request, [item], step=SUBSCRIBE)]

    def email(self, payload: dict[str, Any]) -> str:
        email = self.opts.email_of(payload)
        if email is None:
            raise ItemRejected("Email: MailUp keys the list's recipients by email; none of "
                               + ", ".join(self.opts.email) + " holds one (options.email)")
        return email

    def recipient_url(self) -> str:
        s = self.settings
        path = (GROUP_RECIPIENT_PATH.format(group=s.group_id) if s.group_id is not None
                else LIST_RECIPIENT_PATH.format(list=s.list_id))
        return f"{s.root}{path}?ConfirmEmail={'true' if s.confirm_email else 'false'}"

    def recipient(self, payload: dict[str, Any], email: str,
                  refused: list[tuple[str, str]]) -> dict[str, Any]:
        """The recipient: Name (required by MailUp though unused: empty when none), Email,
        the mobile number in two parts, and the mapped personal data fields."""
        name = first_value(payload, *self.opts.name)
        body: dict[str, Any] = {"Name": str(stringify(name) or "") if name is not None else "",
                                "Email": email}
        if self.opts.mobile:
            try:
                phone = self.opts.phone_of(payload)
            except PhoneError as exc:
                refused.append(("MobileNumber", f"left out: {exc}"))
            else:
                if phone is not None:
                    body["MobilePrefix"], body["MobileNumber"] = calling_code(phone)
        values: list[tuple[int, str, Any]] = []
        traits = payload.get("traits") or {}
        for trait, field_id in self.opts.fields.items():
            if field_id is not None:
                values.append((field_id, f"traits.{trait}", traits.get(trait)))
        if self.opts.user_id_field is not None:
            values.append((self.opts.user_id_field, "userId", payload.get("userId")))
        fields = []
        for field_id, source, raw in values:
            value = stringify(raw)
            if value is None:
                continue
            if len(value) > MAX_FIELD_LENGTH:
                refused.append((f"Fields[{field_id}]", f"left out: {source} is longer than "
                                f"the {MAX_FIELD_LENGTH} characters of a MailUp personal "
                                "data field"))
                continue
            fields.append({"Id": field_id, "Value": value})
        body["Fields"] = fields
        return body

    def lookup(self, email: str) -> httpx.Request:
        """The list's subscribers whose email contains this one (MailUp's documented filter;
        quotes doubled, as its OData-style strings take them)."""
        quoted = email.replace("'", "''")
        s = self.settings
        return httpx.Request(
            "GET", s.root + SUBSCRIBED_PATH.format(list=s.list_id),
            params={"filterby": f"\"Email.Contains('{quoted}')\"",
                    "pageSize": str(LOOKUP_PAGE_SIZE), "pageNumber": "0"},
            headers=ACCEPT)

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | FollowUp:
        status = response.status_code
        data = response_json(response)
        if planned.step == LOOKUP and status == 200:
            return self.unsubscribe(planned, data, response)
        return http_outcome(response, _reason(status, data, response))

    def unsubscribe(self, planned: PlannedRequest, data: dict[str, Any] | None,
                    response: httpx.Response) -> Outcome | FollowUp:
        """The lookup's answer: unsubscribe the recipient with exactly this email, if the
        list has it subscribed; else there is nothing to withdraw."""
        items = data.get("Items") if data is not None else None
        if not isinstance(items, list):
            return Retry(f"HTTP 200 without MailUp's list of recipients: "
                         f"{short_body(response)}")
        (item,) = planned.items
        email = self.email(item.payload).casefold()
        for found in items:
            if (isinstance(found, dict) and str(found.get("Email", "")).casefold() == email
                    and isinstance(found.get("idRecipient"), int)):
                s = self.settings
                url = s.root + UNSUBSCRIBE_PATH.format(list=s.list_id,
                                                       recipient=found["idRecipient"])
                return FollowUp(httpx.Request("DELETE", url, headers=ACCEPT), UNSUBSCRIBE)
        total = data.get("TotalElementsCount") if data is not None else None
        if isinstance(total, int) and total > len(items):
            # Asking again would read the same page: a dead letter names why.
            return Failed(f"the list has {total} subscribers whose email contains this one "
                          f"and the first {len(items)} do not hold it exactly: not "
                          "unsubscribed, do it in MailUp's console")
        return DELIVERED


def _granted(payload: dict[str, Any]) -> bool:
    """Whether the person granted the email consent (False when the mapping reads none)."""
    consent = payload.get("consent")
    return isinstance(consent, dict) and consent.get("email") is True


def _reason(status: int, data: dict[str, Any] | None, response: httpx.Response) -> str:
    """`HTTP 400: <ErrorName>: <ErrorDescription>` from MailUp's error body, else the start of
    the body."""
    if data is None or not isinstance(data.get("ErrorDescription"), str):
        return f"HTTP {status}: {short_body(response)}"
    name = data.get("ErrorName")
    text = f"{name}: {data['ErrorDescription']}" if isinstance(name, str) and name else str(
        data["ErrorDescription"])
    return f"HTTP {status}: {truncate(text, 300)}"


__all__ = ["MailUpDestination"]

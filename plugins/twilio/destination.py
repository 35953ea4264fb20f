"""The Twilio destination: an SMS per event the operator's filter lets through, sent with
Twilio's Messages API, only to people whose SMS consent is granted.

    track   POST /2010-04-01/Accounts/{AccountSid}/Messages.json
            To=<the phone in E.164>&From=<settings.from_number>
            &MessagingServiceSid=<settings.messaging_service_sid>&Body=<templates.body>
            &StatusCallback=<settings.status_callback>      (form-encoded)

Which events send a message is the filter's choice (`filter.events.allow`); what the message
says is the mapping's `body` template (Jinja2, rendered by the route step); who may get one is
the SMS consent (the shipped mapping's `rules.require_consent: [sms]`, checked again here).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import httpx

from crossdock.destination import (
    DELIVERED,
    Destination,
    DestinationContext,
    Failed,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    PlannedRequest,
    Retry,
    basic_auth,
    first_value,
    http_outcome,
    parse_retry_after,
    response_json,
    short_body,
)
from crossdock.phones import PhoneError, e164
from crossdock.plugins.twilio.const import (
    AUTHENTICATE,
    MAX_BODY_LENGTH,
    MESSAGES_PATH,
    PLUGIN_NAME,
    RECIPIENT_ERRORS,
    TOO_MANY_REQUESTS,
)
from crossdock.plugins.twilio.settings import TwilioOptions, TwilioSettings


class TwilioDestination(Destination[TwilioSettings]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/twilio.md",
        description="Twilio: an SMS per matching event (Messages API, a Jinja2 body), only "
                    "to people whose SMS consent is granted",
        message_types=frozenset({"track"}), auth="basic",
        # Twilio limits concurrent requests per account (20429), not requests per second.
        concurrency=4)
    options_model = TwilioOptions

    def use_mapping(self, mapping: Any) -> None:
        super().use_mapping(mapping)
        self.opts = TwilioOptions.model_validate(self.options)

    def config_warnings(self, context: DestinationContext) -> list[str]:
        if context.allowed.get("events") is None:
            return ["filter.events.allow is not set: every event sends an SMS; name the events "
                    "that should (filter: {events: {allow: [Order Shipped]}})"]
        return []

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> PlannedRequest:
        payload = item.payload
        consent = payload.get("consent")
        if not isinstance(consent, dict) or consent.get("sms") is not True:
            raise ItemRejected("consent: the person's SMS consent is not granted; Twilio "
                               "messages go only to people who opted in (mapping.consent must "
                               "name sms)")
        form = {"To": self.to(payload)}
        if self.settings.from_number is not None:
            form["From"] = self.settings.from_number
        if self.settings.messaging_service_sid is not None:
            form["MessagingServiceSid"] = self.settings.messaging_service_sid
        form["Body"] = self.body(payload)
        if self.settings.status_callback is not None:
            form["StatusCallback"] = str(self.settings.status_callback)
        url = self.settings.root + MESSAGES_PATH.format(account_sid=self.settings.account_sid)
        user, password = self.settings.credentials()
        request = httpx.Request("POST", url, content=urlencode(form).encode(), headers={
            "authorization": basic_auth(user, password), "accept": "application/json",
            "content-type": "application/x-www-form-urlencoded"})
        # One account, one concurrency limit: the account SID is no secret.
        return PlannedRequest(request, [item], f"twilio:{self.settings.account_sid}")

    def to(self, payload: dict[str, Any]) -> str:
        phone = first_value(payload, *self.opts.phone)
        if phone is None:
            raise ItemRejected("To: this person has no phone number (mapping.options.phone)")
        try:
            return e164(phone, self.opts.phone_region,
                        no_region_hint="set mapping.options.phone_region")
        except PhoneError as exc:
            raise ItemRejected(f"To: {exc}") from None

    def body(self, payload: dict[str, Any]) -> str:
        rendered = payload.get("rendered") or {}
        # Without the template (an operator removed it) the event's name is the message.
        body = str(rendered["body"] if "body" in rendered else payload.get("event") or "")
        if not body.strip():
            raise ItemRejected("mapping.templates.body: rendered empty; Twilio needs a Body")
        if len(body) > MAX_BODY_LENGTH:
            raise ItemRejected(f"mapping.templates.body: rendered {len(body)} characters, more "
                               f"than Twilio's {MAX_BODY_LENGTH}")
        return body

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        status = response.status_code
        if 200 <= status < 300:
            return DELIVERED
        body = response_json(response) or {}
        code, message = body.get("code"), body.get("message")
        if not isinstance(code, int):
            return http_outcome(response)
        reason = f"twilio {code}: {message}"
        if code == TOO_MANY_REQUESTS or status == 429:
            # A 429 is never processed: always safe to send again.
            return Retry(reason, parse_retry_after(response.headers.get("retry-after")))
        if code in RECIPIENT_ERRORS:
            return Failed(f"recipient: {RECIPIENT_ERRORS[code]} ({reason})")
        if code == AUTHENTICATE or status == 401:
            return Failed(f"bad credentials ({reason})")
        return http_outcome(response, reason if message else f"{reason} {short_body(response)}")

"""The Twilio destination: an SMS per event the operator's filter lets through, sent with
Twilio's Messages API, only to people whose SMS consent is granted.

    track   POST /2010-04-01/Accounts/{AccountSid}/Messages.json
            To=<the phone in E.164>&From=<settings.from_number>
            &MessagingServiceSid=<settings.messaging_service_sid>&Body=<templates.body>
            &StatusCallback=<settings.status_callback>      (form-encoded)

Which events send a message is the filter's choice (`filter.events.allow`); what the message
says is the mapping's `body` template (Jinja2, rendered by the route step); who may get one is
the SMS consent (the shipped mapping's `rules.require_consent: [sms]`, checked again here).

Twilio takes no idempotency key, so a message whose earlier attempt may have reached Twilio
(a timeout, a 5xx, a worker that died) is looked up before it is sent again:

    retry   GET  .../Messages.json?To=<phone>&PageSize=50     (the newest first)
            a message to that phone with this body, made since the outbox row was -> delivered
            none -> POST the message (a FollowUp of the same attempt)
"""

from __future__ import annotations

from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import httpx

from crossdock.destination import (
    DELIVERED,
    Destination,
    DestinationContext,
    Failed,
    FollowUp,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    PlannedRequest,
    Retry,
    basic_auth,
    http_outcome,
    parse_retry_after,
    response_json,
    short_body,
)
from crossdock.phones import PhoneError
from crossdock.plugins.twilio.const import (
    AUTHENTICATE,
    LOOKUP_PAGE_SIZE,
    LOOKUP_SKEW,
    MAX_BODY_LENGTH,
    MESSAGES_PATH,
    PLUGIN_NAME,
    RECIPIENT_ERRORS,
    TOO_MANY_REQUESTS,
)
from crossdock.plugins.twilio.settings import TwilioOptions, TwilioSettings

# The steps of an attempt: a retry looks its message up before sending it again.
SEND, LOOKUP = "send", "lookup"


class TwilioDestination(Destination[TwilioSettings, TwilioOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/twilio.md",
        description="Twilio: an SMS per matching event (Messages API, a Jinja2 body), only "
                    "to people whose SMS consent is granted",
        message_types=frozenset({"track"}), auth="basic",
        # Twilio limits concurrent requests per account (20429), not requests per second.
        concurrency=4)

    def config_warnings(self, context: DestinationContext) -> list[str]:
        if context.allowed.get("events") is None:
            return ["filter.events.allow is not set: every event sends an SMS; name the events "
                    "that should (filter: {events: {allow: [Order Shipped]}})"]
        return []

    # -- build -------------------------------------------------------------------------

    def build_item(self, item: OutboxItem) -> PlannedRequest:
        form = self.form(item.payload)
        # One account, one concurrency limit: the account SID is no secret.
        key = f"twilio:{self.settings.account_sid}"
        if item.attempts > 1:
            # An earlier attempt may have reached Twilio and lost its answer: Twilio takes no
            # idempotency key, so look for its message before sending a second SMS.
            return PlannedRequest(self.lookup_request(form["To"]), [item], key, LOOKUP)
        return PlannedRequest(self.create_request(form), [item], key, SEND)

    def form(self, payload: dict[str, Any]) -> dict[str, str]:
        """The Messages API form of one message (ItemRejected when it cannot be sent)."""
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
        return form

    def url(self) -> str:
        return self.settings.root + MESSAGES_PATH.format(account_sid=self.settings.account_sid)

    def headers(self) -> dict[str, str]:
        user, password = self.settings.credentials()
        return {"authorization": basic_auth(user, password), "accept": "application/json"}

    def create_request(self, form: dict[str, str]) -> httpx.Request:
        return httpx.Request("POST", self.url(), content=urlencode(form).encode(), headers={
            **self.headers(), "content-type": "application/x-www-form-urlencoded"})

    def lookup_request(self, to: str) -> httpx.Request:
        """The newest messages to `to` (the list is newest first)."""
        return httpx.Request("GET", self.url(), params={"To": to, "PageSize": LOOKUP_PAGE_SIZE},
                             headers=self.headers())

    def to(self, payload: dict[str, Any]) -> str:
        try:
            phone = self.opts.phone_of(payload)
        except PhoneError as exc:
            raise ItemRejected(f"To: {exc}") from None
        if phone is None:
            raise ItemRejected("To: this person has no phone number (mapping.options.phone)")
        return phone

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

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | FollowUp:
        status = response.status_code
        if planned.step == LOOKUP and 200 <= status < 300:
            (item,) = planned.items
            listed = response_json(response)
            messages = listed.get("messages") if listed is not None else None
            if not isinstance(messages, list):
                # Not Twilio's list (a proxy's page): it cannot say the SMS was not sent.
                return Retry(f"twilio HTTP {status} without a message list: "
                             f"{short_body(response)}")
            form = self.form(item.payload)
            if any(_same_message(m, form, item.created_at - LOOKUP_SKEW) for m in messages):
                # An earlier attempt's SMS: Twilio has it; sending again would text twice.
                return DELIVERED
            return FollowUp(self.create_request(form), SEND)
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


def _same_message(found: Any, form: dict[str, str], since: float) -> bool:
    """Whether a listed message is this one sent before: outbound, to the same phone, the
    same body, made no earlier than `since` (seconds since the epoch)."""
    if not isinstance(found, dict):
        return False
    if found.get("to") != form["To"] or found.get("body") != form["Body"]:
        return False
    if not str(found.get("direction") or "").startswith("outbound"):
        return False
    try:
        made = parsedate_to_datetime(str(found.get("date_created"))).timestamp()
    except (TypeError, ValueError):
        return False
    return made >= since

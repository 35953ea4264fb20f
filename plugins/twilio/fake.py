"""Contract fake of Twilio's Messages API (2010-04-01): a real HTTP server that refuses what
Twilio refuses.

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json   send a message  -> 201 Message
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json   list messages   -> 200 page

The contract it enforces (sources on docs/destinations/twilio.md):
- HTTP Basic auth with the account SID and its auth token, or an API key SID (SK...) of the
  account and its secret; the URL names the same account -> else 401, code 20003;
- a form-encoded body (a JSON body has no To) with `To` -> else 400 21604; `To` in E.164 ->
  else 21211; a landline (`landlines`) -> 21614; a number that replied STOP (`opted_out`)
  -> 21610;
- a `From` (a number of the account, a short code or an alphanumeric sender id of the
  account) or a `MessagingServiceSid` of the account -> else 400 21603 / 21606 / 21705;
- a `Body` of 1 to 1,600 characters -> else 400 21602 / 21617;
- a `StatusCallback` that is an http(s) URL whose host has no underscore, at most 4,000
  characters -> else 400 21609;
- at most `max_concurrency` requests at once per account -> 429, code 20429 (never
  processed, safe to retry);
- the list: the account's messages, newest first, filtered by `To` and `From`, at most
  `PageSize` (1 to 1,000, default 50) -> {"messages": [...], "page", "page_size", ...};
  each message has its `date_created` (RFC 2822, the fake's clock).
`lost_answers` makes the next messages be created and then answered 504, as when Twilio took
a message and its answer never reached the sender (a timeout).
Errors answer Twilio's body: {"code", "message", "more_info", "status"}. Scripted replies
(`fake.script([500])`) answer first.

    python -m crossdock.plugins.twilio.fake --port 8094
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aiohttp import web

from crossdock.plugins.twilio.const import (
    ALPHANUMERIC_SENDER,
    API_VERSION,
    AUTHENTICATE,
    MAX_BODY_LENGTH,
    MAX_CALLBACK_LENGTH,
    MESSAGES_PATH,
    SHORT_CODE,
    TOO_MANY_REQUESTS,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import FakeState, Refused, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[TwilioFake] = web.AppKey("twilio_fake")
ACCOUNT_SID = "AC" + "0" * 31 + "1"
AUTH_TOKEN = "twilio-test-token"
API_KEY_SID = "SK" + "0" * 31 + "1"
API_KEY_SECRET = "twilio-test-key-secret"
FROM_NUMBER = "+15017122661"
SERVICE_SID = "MG" + "0" * 31 + "1"
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
#: the list's page size when none is asked, and the largest
LIST_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000


def _refused(status: int, code: int, message: str) -> Refused:
    """A request Twilio answers with an error status and code."""
    return Refused(status, {"code": code, "message": message,
                            "more_info": f"https://www.twilio.com/docs/errors/{code}",
                            "status": status})


@dataclass
class TwilioFake(FakeState):
    """What the Twilio fake knows (the account, its credentials, senders and services, the
    numbers that opted out or are landlines, the concurrency limit) and holds (messages sent,
    every request it answered)."""

    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    api_keys: dict[str, str] = field(default_factory=lambda: {API_KEY_SID: API_KEY_SECRET})
    senders: set[str] = field(default_factory=lambda: {FROM_NUMBER, "12345", "CROSSDOCK"})
    services: set[str] = field(default_factory=lambda: {SERVICE_SID})
    opted_out: set[str] = field(default_factory=set)
    landlines: set[str] = field(default_factory=set)
    #: concurrent requests per account before a 429 (None: no limit)
    max_concurrency: int | None = 10
    clock: Callable[[], float] = time.time
    messages: list[dict[str, Any]] = field(default_factory=list)
    in_flight: int = 0

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.messages.clear()
            self.opted_out.clear()
            self.landlines.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(messages=copy.deepcopy(self.messages))
        return snap

    def statuses(self) -> list[int]:
        """The status of every answered request, in arrival order."""
        return [r["status"] for r in self.received]

    # -- the contract ------------------------------------------------------------------

    def check_auth(self, authorization: str | None, account: str) -> None:
        if not authorization or not authorization.startswith("Basic "):
            raise _refused(401, AUTHENTICATE, "Authenticate")
        try:
            user, _, password = base64.b64decode(
                authorization[6:], validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _refused(401, AUTHENTICATE, "Authenticate") from None
        valid = ((user == self.account_sid and password == self.auth_token)
                 or (user in self.api_keys and password == self.api_keys[user]))
        if not valid or account != self.account_sid:
            raise _refused(401, AUTHENTICATE, "Authenticate")

    def send(self, form: dict[str, str]) -> dict[str, Any]:
        to = form.get("To")
        if not to:
            raise _refused(400, 21604, "A 'To' phone number is required.")
        if not _E164.match(to):
            raise _refused(400, 21211, f"Invalid 'To' Phone Number: {to}")
        sender, service = form.get("From"), form.get("MessagingServiceSid")
        if not sender and not service:
            raise _refused(400, 21603, "A 'From' or 'MessagingServiceSid' parameter is "
                                       "required to send a message.")
        if service and service not in self.services:
            raise _refused(400, 21705, "The Messaging Service Sid is invalid.")
        if sender and not (sender in self.senders and (
                _E164.match(sender) or SHORT_CODE.match(sender)
                or ALPHANUMERIC_SENDER.match(sender))):
            raise _refused(400, 21606, "The From phone number is not a valid, SMS-capable "
                                       "inbound phone number or short code for your account.")
        body = form.get("Body")
        if not body:
            raise _refused(400, 21602, "Message body is required.")
        if len(body) > MAX_BODY_LENGTH:
            raise _refused(400, 21617, "The concatenated message body exceeds the 1600 "
                                       "character limit.")
        callback = form.get("StatusCallback")
        if callback is not None:
            parts = urlsplit(callback)
            if (parts.scheme not in ("http", "https") or not parts.hostname
                    or "_" in parts.hostname or len(callback) > MAX_CALLBACK_LENGTH):
                raise _refused(400, 21609, "The StatusCallback URL is not a valid URL.")
        with self._lock:
            if to in self.landlines:
                raise _refused(400, 21614, f"'To' number {to} is not a valid mobile number")
            if to in self.opted_out:
                raise _refused(400, 21610, "Attempt to send to unsubscribed recipient")
            sid = f"SM{len(self.messages) + 1:032x}"
            message = {
                "sid": sid, "account_sid": self.account_sid, "api_version": API_VERSION,
                "to": to, "from": sender, "messaging_service_sid": service, "body": body,
                "status": "queued" if sender else "accepted", "direction": "outbound-api",
                "num_segments": str(-(-len(body) // 153) if len(body) > 160 else 1),
                "num_media": "0", "error_code": None, "error_message": None,
                "price": None, "price_unit": "USD", "status_callback": callback,
                "date_created": _rfc2822(self.clock()), "date_sent": None,
                "uri": MESSAGES_PATH.format(account_sid=self.account_sid).replace(
                    "Messages.json", f"Messages/{sid}.json")}
            self.messages.append(message)
        return message

    def listed(self, query: dict[str, str]) -> dict[str, Any]:
        """A page of the list: the newest messages first, filtered by To and From."""
        raw_size = query.get("PageSize", str(LIST_PAGE_SIZE))
        if not raw_size.isdigit() or not 1 <= int(raw_size) <= MAX_PAGE_SIZE:
            raise _refused(400, 20001, f"PageSize must be 1 to {MAX_PAGE_SIZE}")
        size = int(raw_size)
        with self._lock:
            found = [copy.deepcopy(m) for m in reversed(self.messages)
                     if query.get("To") in (None, m["to"])
                     and query.get("From") in (None, m["from"])][:size]
        path = MESSAGES_PATH.format(account_sid=self.account_sid)
        return {"messages": found, "page": 0, "page_size": size, "start": 0,
                "end": max(len(found) - 1, 0), "uri": f"{path}?PageSize={size}&Page=0",
                "first_page_uri": f"{path}?PageSize={size}&Page=0", "next_page_uri": None,
                "previous_page_uri": None}


def _rfc2822(at: float) -> str:
    """A time as Twilio writes its messages' dates ("Thu, 30 Jul 2015 20:12:31 +0000")."""
    return datetime.fromtimestamp(at, UTC).strftime("%a, %d %b %Y %H:%M:%S +0000")


def make_app(fake: TwilioFake | None = None) -> web.Application:
    """The Twilio fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or TwilioFake()
    app = fake_app(FAKE_KEY, fake)

    async def messages(request: web.Request) -> web.Response:
        if request.method == "GET":
            return await listing(request)
        raw = await request.read()
        with fake._lock:
            fake.in_flight += 1
            busy = fake.max_concurrency is not None and fake.in_flight > fake.max_concurrency
        try:
            await fake.delay()
            form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace"),
                                                  keep_blank_values=True).items()}
            if "form-urlencoded" not in request.headers.get("Content-Type", ""):
                form = {}  # Twilio reads form fields only: a JSON body has no To
            entry: dict[str, Any] = {
                "method": request.method, "path": request.path, "form": form,
                "headers": {k.lower(): v for k, v in request.headers.items()}}
            response = _answer(fake, request, form, busy)
            entry["status"] = response.status
            fake.record(entry)
            return response
        finally:
            with fake._lock:
                fake.in_flight -= 1

    async def listing(request: web.Request) -> web.Response:
        query = dict(request.query)
        entry: dict[str, Any] = {"method": "GET", "path": request.path, "query": query,
                                 "headers": {k.lower(): v for k, v in request.headers.items()}}
        try:
            fake.check_auth(request.headers.get("Authorization"),
                            request.match_info["account"])
            reply = fake.next_reply()
            if reply is not None and not reply.passes:
                response = reply.response()
            else:
                response = web.json_response(fake.listed(query))
        except Refused as refused:
            response = refused.response()
        entry["status"] = response.status
        fake.record(entry)
        return response

    path = MESSAGES_PATH.replace("{account_sid}", "{account}")
    app.router.add_post(path, messages)
    app.router.add_get(path, messages)
    return app


def _answer(fake: TwilioFake, request: web.Request, form: dict[str, str],
            busy: bool) -> web.Response:
    try:
        fake.check_auth(request.headers.get("Authorization"), request.match_info["account"])
        if busy:
            raise _refused(429, TOO_MANY_REQUESTS, "Too Many Requests")
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return reply.response()
        message = fake.send(form)
        if fake.take_lost_answer():
            return web.json_response({"message": "Gateway Timeout"}, status=504)
        return web.json_response(message, status=201)
    except Refused as refused:
        return refused.response()


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Twilio destination (the register_demo_destinations hook)."""
    fake = TwilioFake()
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        if entry.get("method") == "GET":
            query = entry.get("query") or {}
            return f"lookup of the SMS to {query.get('To')} (a retry) -> {entry['status']}"
        form = entry.get("form") or {}
        return f"SMS to {form.get('To')}: {form.get('Body')!r} -> {entry['status']}"

    def state() -> list[str]:
        sent = server.call(lambda: len(fake.messages))
        return [f"{sent} messages queued"]

    return DemoDestination(
        "twilio",
        {"plugin": "twilio",
         "settings": {"base_url": server.url, "account_sid": ACCOUNT_SID,
                      "auth_token": AUTH_TOKEN, "from_number": FROM_NUMBER},
         # An SMS for completed orders only, to the people who opted in to SMS.
         "filter": {"events": {"allow": ["Order Completed"]}},
         "mapping": {"templates": {"body": "Thank you! Your order of {{ properties.price }} "
                                           "{{ properties.currency }} is confirmed."}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Twilio contract fake.", 8094)
    parser.add_argument("--auth-token", default=AUTH_TOKEN)
    args = parser.parse_args(argv)
    fake = TwilioFake(auth_token=args.auth_token, latency=args.latency)
    run_fake(make_app(fake), args, f"Twilio fake on {{url}} (account {ACCOUNT_SID}, token "
                                   f"{args.auth_token}, From {FROM_NUMBER}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()

"""Contract fake of MailUp's REST API and its authorization server, on one server, refusing what
MailUp refuses.

    POST   /Authorization/OAuth/Token                       password or refresh_token grant
    POST   {console}/Console/List/{idList}/Recipient        add or update one recipient
    POST   {console}/Console/Group/{idGroup}/Recipient      the same, also into a group
    GET    {console}/Console/List/{idList}/Recipients/Subscribed?filterby=…
    DELETE {console}/Console/List/{idList}/Unsubscribe/{idRecipient}
    GET    {console}/Console/Recipient/DynamicFields        the account's personal data fields

({console} is /API/v1.1/Rest/ConsoleService.svc.) The contract it enforces (sources on
docs/destinations/mailup.md):
- the token endpoint takes a form with grant_type `password` (username and password of the
  account's user) or `refresh_token` (a refresh token it issued and has not renewed since),
  with the application's client_id and client_secret; it answers access_token, expires_in
  (3600) and a new refresh_token (the old one then stops working); a wrong client -> 401
  invalid_client, a wrong user, password or refresh token -> 400 invalid_grant, another grant
  -> 400 unsupported_grant_type;
- the console routes take only `Authorization: Bearer <token>` of a live token (expired on its
  clock after expires_in) -> else 401 with MailUp's error body `{"ErrorCode": "401",
  "ErrorDescription": "Authorization error: Access token is expired", "ErrorName":
  "Unauthorized", "ErrorStack": null}`;
- a recipient is a JSON object with a valid Email, a string Name (may be empty), a
  MobilePrefix of "+NN", "00NN" or "" with a MobileNumber of digits, and Fields: objects with
  an Id of a personal data field the account has and a string Value of at most 200 characters
  (nvarchar(200)) -> else 400; the list or group must exist -> else 400;
- email address and mobile number are primary keys: a request whose email is a recipient's and
  whose mobile number another's (or the same recipient's mobile number changed while held) is a
  key mismatch -> 400, nothing changes;
- adding to a list: a new recipient is subscribed, or Pending with `ConfirmEmail=true` (and a
  confirmation email is recorded); a subscribed one has its personal data updated; one
  subscribed elsewhere is subscribed here; one that unsubscribed from this list stays
  unsubscribed (the fake's reading: MailUp forbids forcing an opt-in the recipient did not
  ask for); the answer is the recipient's id;
- the subscribed recipients are read with `filterby="Email.Contains('…')"` (quotes doubled),
  pageSize and pageNumber, as MailUp's paginated answer (IsPaginated, Items, PageNumber,
  PageSize, Skipped, TotalElementsCount); another filter -> 400;
- unsubscribing names a recipient of the list -> else 400;
- requests per second beyond `rate_limit` (none unless set) -> 429.
Scripted replies (`fake.script([500])`) answer the console routes first; `token_script` the
token endpoint. Faults (hang, reset) meet every route.

    python -m crossdock.plugins.mailup.fake --port 8094
"""

from __future__ import annotations

import copy
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from crossdock.plugins.mailup.const import (
    DYNAMIC_FIELDS_PATH,
    GROUP_RECIPIENT_PATH,
    LIST_RECIPIENT_PATH,
    MAX_FIELD_LENGTH,
    SUBSCRIBED_PATH,
    TOKEN_LIFETIME,
    UNSUBSCRIBE_PATH,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState, Refused, Reply, body_json, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[MailUpFake] = web.AppKey("mailup_fake")
TOKEN_PATH = "/Authorization/OAuth/Token"
CONSOLE = "/API/v1.1/Rest/ConsoleService.svc"
DEFAULT_CLIENT_ID = "0a111fe1-mailup-client"
DEFAULT_CLIENT_SECRET = "f00b000e-mailup-secret"
DEFAULT_USERNAME = "m1234"
DEFAULT_PASSWORD = "mailup-password-1"
DEFAULT_REFRESH = "mailup-refresh-0"
#: a new account's personal data fields (Marketing+: 26 by default)
DEFAULT_FIELDS = {1: "FirstName", 2: "LastName", 3: "Company", 4: "City", 5: "Province",
                  6: "ZIP", 7: "State", 8: "Region", 9: "Address", 10: "Gender", 11: "phone",
                  12: "CustomerID", **{n: f"Field{n}" for n in range(13, 27)}}
SUBSCRIBED, UNSUBSCRIBED, PENDING = "Subscribed", "Unsubscribed", "Pending"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_PREFIX = re.compile(r"^(\+\d{1,4}|00\d{1,4}|)$")
_FILTER = re.compile(r"^\"Email\.Contains\('((?:[^']|'')*)'\)\"$")


_NAMES = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests"}


def _error(status: int, description: str) -> Refused:
    return Refused(status, {"ErrorCode": str(status), "ErrorDescription": description,
                            "ErrorName": _NAMES.get(status, "Error"), "ErrorStack": None})


def _oauth_error(status: int, error: str, description: str) -> Refused:
    return Refused(status, {"error": error, "error_description": description})


@dataclass
class Recipient:
    id: int
    email: str
    name: str = ""
    prefix: str = ""
    mobile: str = ""
    fields: dict[int, str] = field(default_factory=dict)
    #: idList -> Subscribed, Unsubscribed or Pending
    lists: dict[int, str] = field(default_factory=dict)
    groups: set[int] = field(default_factory=set)

    def item(self) -> dict[str, Any]:
        return {"idRecipient": self.id, "Email": self.email, "Name": self.name,
                "MobilePrefix": self.prefix, "MobileNumber": self.mobile,
                "Fields": [{"Id": i, "Description": DEFAULT_FIELDS.get(i, ""), "Value": v}
                           for i, v in sorted(self.fields.items())]}


@dataclass
class MailUpFake(FakeState):
    """What the fake account knows (its application, user, lists, groups and fields) and holds
    (tokens, recipients, confirmation emails sent, every request it answered)."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    lifetime: int = TOKEN_LIFETIME
    clock: Callable[[], float] = time.time
    #: requests per second on the console routes (None: no limit)
    rate_limit: int | None = None
    #: the token endpoint's next answers (statuses) before it issues tokens again
    token_script: list[int] = field(default_factory=list)
    #: idList -> its groups
    lists: dict[int, set[int]] = field(default_factory=lambda: {1: {10}, 2: set()})
    fields: dict[int, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    tokens: dict[str, float] = field(default_factory=dict)
    refresh_tokens: set[str] = field(default_factory=lambda: {DEFAULT_REFRESH})
    token_requests: int = 0
    recipients: dict[int, Recipient] = field(default_factory=dict)
    #: (idList, email) of each confirmation email sent (ConfirmEmail=true)
    confirmations: list[tuple[int, str]] = field(default_factory=list)
    _windows: dict[str, FixedWindow] = field(default_factory=dict, repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.tokens.clear()
            self.refresh_tokens = {DEFAULT_REFRESH}
            self.token_requests = 0
            self.token_script.clear()
            self.recipients.clear()
            self.confirmations.clear()
            self._windows.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(recipients=[self._view(r) for r in self.recipients.values()],
                        confirmations=list(self.confirmations),
                        token_requests=self.token_requests)
        return snap

    @staticmethod
    def _view(recipient: Recipient) -> dict[str, Any]:
        return {**recipient.item(), "Lists": dict(recipient.lists),
                "Groups": sorted(recipient.groups)}

    def recipient(self, email: str) -> dict[str, Any] | None:
        """What the account holds of the recipient with this email (Lists: its statuses)."""
        with self._lock:
            for recipient in self.recipients.values():
                if recipient.email.casefold() == email.casefold():
                    return copy.deepcopy(self._view(recipient))
        return None

    def add(self, email: str, list_id: int, status: str = SUBSCRIBED) -> int:
        """A recipient held already (set up by a test), with its status on one list."""
        with self._lock:
            new = Recipient(len(self.recipients) + 1, email, lists={list_id: status})
            self.recipients[new.id] = new
            return new.id

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now."""
        with self._lock:
            for token in self.tokens:
                self.tokens[token] = 0.0

    # -- the token endpoint --------------------------------------------------------------

    def token(self, form: dict[str, str]) -> dict[str, Any]:
        with self._lock:
            self.token_requests += 1
            scripted = self.token_script.pop(0) if self.token_script else None
        if scripted is not None:
            raise _oauth_error(scripted, "temporarily_unavailable", "scripted")
        grant = form.get("grant_type")
        if grant not in ("password", "refresh_token"):
            raise _oauth_error(400, "unsupported_grant_type",
                               "grant_type must be password or refresh_token")
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                   self.client_secret):
            raise _oauth_error(401, "invalid_client", "Client authentication failed.")
        with self._lock:
            if grant == "password":
                if (form.get("username"), form.get("password")) != (self.username,
                                                                     self.password):
                    raise _oauth_error(400, "invalid_grant", "wrong username or password")
            else:
                old = form.get("refresh_token", "")
                if old not in self.refresh_tokens:
                    raise _oauth_error(400, "invalid_grant", "the refresh token is not valid")
                self.refresh_tokens.discard(old)  # renewed at each use
            token = secrets.token_urlsafe(24)
            refresh = "mailup-refresh-" + secrets.token_urlsafe(12)
            self.tokens[token] = self.clock() + self.lifetime
            self.refresh_tokens.add(refresh)
        return {"access_token": token, "expires_in": self.lifetime, "refresh_token": refresh}

    # -- the console routes --------------------------------------------------------------

    def check_token(self, authorization: str | None) -> int:
        """The issue number of the live token the request carries, else 401."""
        header = authorization or ""
        token = header.removeprefix("Bearer ")
        with self._lock:
            expires = self.tokens.get(token) if header.startswith("Bearer ") else None
            number = list(self.tokens).index(token) + 1 if expires is not None else 0
        if expires is None:
            raise _error(401, "Authorization error: Invalid access token")
        if expires <= self.clock():
            raise _error(401, "Authorization error: Access token is expired")
        return number

    def take(self) -> None:
        if self.rate_limit is None:
            return
        with self._lock:
            window = self._windows.setdefault("console", FixedWindow(self.rate_limit, 1.0,
                                                                     self.clock))
        taken = window.take("console")
        if not taken.allowed:
            raise _error(429, "Too many requests")

    def subscribe(self, list_id: int, group_id: int | None, confirm: bool, body: Any) -> int:
        if list_id not in self.lists:
            raise _error(400, f"List {list_id} does not exist")
        if not isinstance(body, dict):
            raise _error(400, "the recipient must be a JSON object")
        email = body.get("Email")
        if not isinstance(email, str) or not _EMAIL.match(email.strip()):
            raise _error(400, "Invalid email address")
        email = email.strip()
        name = body.get("Name", "")
        if not isinstance(name, str):
            raise _error(400, "Name must be a string (it may be empty)")
        prefix, mobile = body.get("MobilePrefix", ""), body.get("MobileNumber", "")
        if not isinstance(prefix, str) or not _PREFIX.match(prefix):
            raise _error(400, "MobilePrefix is +NN, 00NN or empty")
        if not isinstance(mobile, str) or (mobile and not mobile.isdigit()):
            raise _error(400, "MobileNumber is digits")
        values = self._fields(body.get("Fields", []))
        number = (prefix.replace("00", "+", 1) if prefix.startswith("00") else prefix) + mobile
        with self._lock:
            held = next((r for r in self.recipients.values()
                         if r.email.casefold() == email.casefold()), None)
            if mobile:
                other = next((r for r in self.recipients.values() if r.mobile
                              and r.prefix + r.mobile == number), None)
                if (other is not None and other is not held) or (
                        held is not None and held.mobile and held.prefix + held.mobile
                        != number):
                    raise _error(400, "Key mismatch: the email and the mobile number belong "
                                      "to different recipients")
            if held is None:
                held = Recipient(len(self.recipients) + 1, email)
                self.recipients[held.id] = held
            if name:
                held.name = name
            if mobile:
                held.prefix, held.mobile = prefix.replace("00", "+", 1) if prefix.startswith(
                    "00") else prefix, mobile
            held.fields.update(values)
            status = held.lists.get(list_id)
            if status is None or (status == PENDING and not confirm):
                if confirm:
                    held.lists[list_id] = PENDING
                    self.confirmations.append((list_id, held.email))
                else:
                    held.lists[list_id] = SUBSCRIBED
            if group_id is not None and held.lists[list_id] != UNSUBSCRIBED:
                held.groups.add(group_id)
            return held.id

    def _fields(self, raw: Any) -> dict[int, str]:
        if not isinstance(raw, list):
            raise _error(400, "Fields must be an array")
        out: dict[int, str] = {}
        for entry in raw:
            if not isinstance(entry, dict) or not isinstance(entry.get("Id"), int):
                raise _error(400, "each field is an object with an integer Id")
            if entry["Id"] not in self.fields:
                raise _error(400, f"Field {entry['Id']} does not exist in the account")
            value = entry.get("Value")
            if not isinstance(value, str):
                raise _error(400, f"Field {entry['Id']}: Value must be a string")
            if len(value) > MAX_FIELD_LENGTH:
                raise _error(400, f"Field {entry['Id']}: at most {MAX_FIELD_LENGTH} "
                                  "characters")
            out[entry["Id"]] = value
        return out

    def subscribed(self, list_id: int, query: dict[str, str]) -> dict[str, Any]:
        if list_id not in self.lists:
            raise _error(400, f"List {list_id} does not exist")
        params = {k.lower(): v for k, v in query.items()}
        match = _FILTER.match(params.get("filterby", ""))
        if match is None:
            raise _error(400, "filterby: this fake reads \"Email.Contains('…')\" only")
        needle = match.group(1).replace("''", "'").casefold()
        try:
            size = int(params.get("pagesize", "20"))
            page = int(params.get("pagenumber", "0"))
        except ValueError:
            raise _error(400, "pageSize and pageNumber are numbers") from None
        with self._lock:
            found = [r.item() for r in self.recipients.values()
                     if r.lists.get(list_id) == SUBSCRIBED and needle in r.email.casefold()]
        items = found[page * size:(page + 1) * size]
        return {"IsPaginated": True, "Items": items, "PageNumber": page, "PageSize": size,
                "Skipped": page * size, "TotalElementsCount": len(found)}

    def unsubscribe(self, list_id: int, recipient_id: int) -> None:
        with self._lock:
            held = self.recipients.get(recipient_id)
            if list_id not in self.lists or held is None or list_id not in held.lists:
                raise _error(400, f"Recipient {recipient_id} is not in list {list_id}")
            held.lists[list_id] = UNSUBSCRIBED


def make_app(fake: MailUpFake | None = None) -> web.Application:
    """The MailUp fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or MailUpFake()
    app = fake_app(FAKE_KEY, fake)

    async def handle(request: web.Request) -> web.Response:
        await fake.delay()
        raw = await request.read()
        entry: dict[str, Any] = {"method": request.method, "path": request.path,
                                 "query": dict(request.query)}
        status, answer = _answer(fake, request, raw, entry)
        entry["status"] = status
        fake.record(entry)
        if isinstance(answer, Reply):
            return answer.response()
        if answer is None:
            return web.Response(status=status)
        return web.json_response(answer, status=status)

    app.router.add_post(TOKEN_PATH, handle)
    app.router.add_post(CONSOLE + LIST_RECIPIENT_PATH.format(list="{list}"), handle)
    app.router.add_post(CONSOLE + GROUP_RECIPIENT_PATH.format(group="{group}"), handle)
    app.router.add_get(CONSOLE + SUBSCRIBED_PATH.format(list="{list}"), handle)
    app.router.add_delete(CONSOLE + UNSUBSCRIBE_PATH.format(list="{list}",
                                                            recipient="{recipient}"), handle)
    app.router.add_get(CONSOLE + DYNAMIC_FIELDS_PATH, handle)
    return app


def _number(text: str) -> int:
    if not text.isdigit():
        raise _error(400, f"{text!r} is not an id")
    return int(text)


def _answer(fake: MailUpFake, request: web.Request, raw: bytes, entry: dict[str, Any]
            ) -> tuple[int, Any]:
    try:
        if request.path == TOKEN_PATH:
            if request.content_type != "application/x-www-form-urlencoded":
                raise _oauth_error(400, "invalid_request", "the body must be a form")
            form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
            # The secrets are never recorded: what came is kept without them.
            entry["body"] = {k: v for k, v in form.items()
                             if k not in ("client_secret", "password", "refresh_token")}
            return 200, fake.token(form)
        body = body_json(raw)
        entry["body"] = body
        entry["token"] = fake.check_token(request.headers.get("Authorization"))
        fake.take()
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return reply.status, reply
        info = request.match_info
        if request.method == "DELETE":
            fake.unsubscribe(_number(info["list"]), _number(info["recipient"]))
            return 200, None
        if request.path.endswith(DYNAMIC_FIELDS_PATH):
            items = [{"Description": d, "Id": i} for i, d in sorted(fake.fields.items())]
            return 200, {"IsPaginated": False, "Items": items, "PageNumber": 0,
                         "PageSize": len(items), "Skipped": 0,
                         "TotalElementsCount": len(items)}
        if request.method == "GET":
            return 200, fake.subscribed(_number(info["list"]), dict(request.query))
        confirm = request.query.get("ConfirmEmail", "false").lower()
        if confirm not in ("true", "false"):
            raise _error(400, "ConfirmEmail is true or false")
        if "group" in info:
            group = _number(info["group"])
            list_id = next((i for i, groups in fake.lists.items() if group in groups), None)
            if list_id is None:
                raise _error(400, f"Group {group} does not exist")
            return 200, fake.subscribe(list_id, group, confirm == "true", body)
        return 200, fake.subscribe(_number(info["list"]), None, confirm == "true", body)
    except Refused as refused:
        return refused.status, refused.body


DEMO_CLIENT_ID = "demo-mailup-client"
DEMO_CLIENT_SECRET = "demo-mailup-secret"
DEMO_PASSWORD = "demo-mailup-password"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's MailUp destination (the register_demo_destinations hook)."""
    fake = MailUpFake(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET,
                      password=DEMO_PASSWORD)
    # Everyone in the demo has the email consent (on by default: profiles.consent_defaults),
    # so each is subscribed once, their names as fields 1 and 2, their userId as field 12.
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body")
        what = ""
        if entry["path"] == TOKEN_PATH and isinstance(body, dict):
            what = f"{body.get('grant_type')} grant"
        elif isinstance(body, dict):
            what = str(body.get("Email", ""))
        return f"{entry['method']} {entry['path'].removeprefix(CONSOLE)} {what} -> " \
               f"{entry['status']}"

    def state() -> list[str]:
        held = server.call(lambda: [fake._view(r) for r in fake.recipients.values()])
        tokens = server.call(lambda: fake.token_requests)
        return [f"recipient {r['Email']}: list 1 {r['Lists'].get(1)}" for r in
                sorted(held, key=lambda r: r["Email"])] + [f"{tokens} token request(s)"]

    return DemoDestination(
        "mailup",
        {"plugin": "mailup",
         "settings": {"base_url": server.url + CONSOLE, "token_url": server.url + TOKEN_PATH,
                      "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET,
                      "username": DEFAULT_USERNAME, "password": DEMO_PASSWORD, "list_id": 1},
         # MailUp keys recipients by email: the anonymous visitor, who has none, is skipped
         # by the rule instead of dead-lettered.
         "rules": {"only_identified": True},
         "mapping": {"options": {"fields": {"firstName": 1, "lastName": 2},
                                 "user_id_field": 12}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the MailUp contract fake.", 8094)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    args = parser.parse_args(argv)
    fake = MailUpFake(client_id=args.client_id, client_secret=args.client_secret,
                      latency=args.latency)
    run_fake(make_app(fake), args, "MailUp fake on {url} (base_url {url}" + CONSOLE
             + ", token_url {url}" + TOKEN_PATH + "; user " + DEFAULT_USERNAME
             + "; GET /_fake/received)")


if __name__ == "__main__":
    main()

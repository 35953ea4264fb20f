"""Contract fake of Salesforce Marketing Cloud (Engagement): the tenant's auth host and REST
host on one server, refusing what Marketing Cloud refuses.

    POST /v2/token                                  client credentials -> an access token
    POST /hub/v1/dataevents/key:{key}/rowset        upsert data extension rows -> 200
    POST /interaction/v1/events                     a Journey Builder entry event -> 201

The contract it enforces (sources on docs/destinations/sfmc.md):
- the token route takes a JSON body with grant_type client_credentials, the integration's
  client_id and client_secret (else 401 invalid_client) and optionally the MID as account_id
  (another business unit: 401); it answers the access token, token_type Bearer, expires_in
  (1079 s: tokens live 20 minutes) and the tenant's rest_instance_url and soap_instance_url;
  too many token requests in a minute (`token_rate_limit`, none unless set) are throttled (429),
  as Salesforce warns a client that asks for a token per call;
- the REST routes take only `Authorization: Bearer <token>` with a token it issued that has not
  expired on its clock -> else 401 `{"message": "Not Authorized", "errorcode": 0}`;
- a rowset names a data extension it holds by external key (else 404); its body is a JSON array
  of 1 to 50 rows (Salesforce's "at most 50 records" taken as the limit) and at most 5 MB
  (413); each row has `keys` with exactly the primary key columns and `values` only of columns
  the data extension has, each of its type (Text within its length, Number, Boolean, Date,
  EmailAddress) -> else 400 errorcode 10006 "Unable to save rows" with additionalErrors naming
  the row and column; the rows before the first bad row are saved, none after it (as
  Marketing Cloud does); `lock_next()` answers the next rowset 10006 without additionalErrors
  (a passing lock);
- an entry event has a ContactKey and an EventDefinitionKey (no period) of an event definition
  it holds, and an object `Data` -> else 400; a contact it holds as inactive -> 400; it answers
  201 with an eventInstanceId;
- REST requests per second beyond `rate_limit` (none unless set) -> 429 with Retry-After.
Scripted replies (`fake.script([500])`) answer the REST routes first; `token_script` the token
route. Faults (hang, reset) meet every route.

    python -m crossdock.plugins.sfmc.fake --port 8093
"""

from __future__ import annotations

import copy
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from crossdock.plugins.sfmc.const import (
    EVENTS_PATH,
    MAX_PAYLOAD_BYTES,
    MAX_ROWS,
    SAVE_FAILED,
    TOKEN_PATH,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import Refused, body_json, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake
from crossdock.testing.faketokens import OAuthFakeState

FAKE_KEY: web.AppKey[SfmcFake] = web.AppKey("sfmc_fake")
DEFAULT_CLIENT_ID = "sfmc-client-id"
DEFAULT_CLIENT_SECRET = "sfmc-client-secret-value"
DEFAULT_MID = "514009999"
#: what expires_in says: Marketing Cloud's tokens live 20 minutes, answered as 1079 s
TOKEN_LIFETIME = 1079
DOCS = "https://developer.salesforce.com/docs/marketing/marketing-cloud/guide/error-handling"
ROWSET_ROUTE = "/hub/v1/dataevents/{key}/rowset"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _error(status: int, message: str, errorcode: int = 10000,
           additional: list[dict[str, Any]] | None = None) -> Refused:
    body: dict[str, Any] = {"message": message, "errorcode": errorcode, "documentation": DOCS}
    if additional:
        body["additionalErrors"] = additional
    return Refused(status, body)


def _oauth_error(status: int, error: str, description: str) -> Refused:
    return Refused(status, {"error": error, "error_description": description,
                            "error_uri": DOCS})


@dataclass
class DataExtension:
    """A data extension: its primary key columns and every column's type (Text:N for text of
    at most N characters, Number, Boolean, Date, EmailAddress)."""

    primary_keys: list[str]
    columns: dict[str, str]
    rows: dict[tuple[str, ...], dict[str, Any]] = field(default_factory=dict)


def default_data_extensions() -> dict[str, DataExtension]:
    return {"Crossdock_Contacts": DataExtension(
        ["ContactKey"], {"ContactKey": "Text:254", "EmailAddress": "EmailAddress",
                         "FirstName": "Text:100", "LastName": "Text:100", "Plan": "Text:50",
                         "LifetimeValue": "Number", "Subscribed": "Boolean",
                         "BirthDate": "Date"})}


@dataclass
class SfmcFake(OAuthFakeState):
    """What the fake tenant knows (its integration, data extensions, entry events, inactive
    contacts) and holds (tokens, rows, events, every request it answered)."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    mid: str = DEFAULT_MID
    lifetime: int = TOKEN_LIFETIME
    #: token requests per minute (None: no limit)
    token_rate_limit: int | None = None
    #: REST requests per second (None: no limit)
    rate_limit: int | None = None
    data_extensions: dict[str, DataExtension] = field(default_factory=default_data_extensions)
    event_definitions: set[str] = field(default_factory=lambda: {
        "Crossdock-Events", "Crossdock-Order-Completed"})
    inactive: set[str] = field(default_factory=set)
    #: the base URL it answers as rest_instance_url (set when served)
    base: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    _locked: int = 0

    def reset(self) -> None:
        super().reset()
        with self._lock:
            for extension in self.data_extensions.values():
                extension.rows.clear()
            self.events.clear()
            self._locked = 0

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(rows={key: [copy.deepcopy(r) for r in ext.rows.values()]
                              for key, ext in self.data_extensions.items()},
                        events=list(self.events))
        return snap

    def lock_next(self) -> None:
        """Answer the next rowset with 10006 and no additionalErrors (a passing lock)."""
        with self._lock:
            self._locked += 1

    def rows(self, key: str) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(r) for r in self.data_extensions[key].rows.values()]

    # -- the token route -----------------------------------------------------------------

    def token(self, request: web.Request, body: Any) -> dict[str, Any]:
        scripted = self.token_asked()
        self._take("token", self.token_rate_limit, 60.0)
        if scripted is not None:
            raise _oauth_error(scripted, "temporarily_unavailable", "scripted")
        if request.content_type != "application/json" or not isinstance(body, dict):
            raise _oauth_error(400, "invalid_request", "the body must be a JSON object")
        if body.get("grant_type") != "client_credentials":
            raise _oauth_error(400, "unsupported_grant_type",
                               "grant_type must be client_credentials")
        if (body.get("client_id"), body.get("client_secret")) != (self.client_id,
                                                                   self.client_secret):
            raise _oauth_error(401, "invalid_client", "Client authentication failed.")
        account = body.get("account_id")
        if account is not None and str(account) != self.mid:
            raise _oauth_error(401, "invalid_client",
                               "the integration has no access to this account_id")
        token = self.tokens.issue(self.lifetime, prefix="eyJ")
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime,
                "scope": "data_extensions_read data_extensions_write journeys_execute",
                "soap_instance_url": self.base + "/", "rest_instance_url": self.base + "/"}

    # -- the REST routes -----------------------------------------------------------------

    def check_token(self, authorization: str | None) -> int:
        """The issue number of the live token the request carries, else 401."""
        number = self.tokens.number((authorization or "").removeprefix("Bearer "))
        if not (authorization or "").startswith("Bearer ") or number is None:
            raise Refused(401, {"documentation": DOCS, "errorcode": 0,
                                "message": "Not Authorized"})
        return number

    def _take(self, name: str, limit: int | None, seconds: float) -> None:
        if limit is None:
            return
        taken = self.window(name, limit, seconds).take(name)
        if not taken.allowed:
            reset = taken.headers(("l", "r", "Retry-After"))["Retry-After"]
            raise Refused(429, {"message": "Too Many Requests", "errorcode": 0,
                                "documentation": DOCS}, {"Retry-After": reset})

    def rowset(self, key: str, raw: bytes, body: Any) -> None:
        extension = self.data_extensions.get(key)
        if extension is None:
            raise _error(404, f"Data extension with external key {key!r} not found")
        if len(raw) > MAX_PAYLOAD_BYTES:
            raise _error(413, "the payload is larger than 5 MB")
        if not isinstance(body, list) or not body:
            raise _error(400, "the body must be a JSON array of rows")
        if len(body) > MAX_ROWS:
            raise _error(400, f"at most {MAX_ROWS} rows per call")
        with self._lock:
            if self._locked:
                self._locked -= 1
                raise _error(400, "Unable to save rows for data extension ID "
                                  f"{uuid.uuid5(uuid.NAMESPACE_URL, key)}", SAVE_FAILED)
        for index, row in enumerate(body):
            problem = _row_problem(extension, row)
            if problem is not None:
                # The rows before this one are saved; none after it.
                raise _error(400, "Unable to save rows for data extension ID "
                                  f"{uuid.uuid5(uuid.NAMESPACE_URL, key)}", SAVE_FAILED,
                             [{"message": f"row {index}: {problem}", "errorcode": 10000}])
            pk = tuple(str(row["keys"][k]) for k in extension.primary_keys)
            with self._lock:
                saved = extension.rows.setdefault(pk, dict(row["keys"]))
                saved.update(row.get("values") or {})

    def event(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise _error(400, "the body must be a JSON object")
        contact = body.get("ContactKey")
        definition = body.get("EventDefinitionKey")
        if not isinstance(contact, str) or not contact:
            raise _error(400, "ContactKey is required")
        if not isinstance(definition, str) or not definition or "." in definition:
            raise _error(400, "EventDefinitionKey is required and holds no period")
        if definition not in self.event_definitions:
            raise _error(400, f"Event definition with key {definition!r} not found")
        data = body.get("Data", {})
        if not isinstance(data, dict):
            raise _error(400, "Data must be an object")
        if contact in self.inactive:
            raise _error(400, "The contact is not active")
        instance = str(uuid.uuid4())
        with self._lock:
            self.events.append({"ContactKey": contact, "EventDefinitionKey": definition,
                                "Data": data, "eventInstanceId": instance})
        return {"eventInstanceId": instance}


def _row_problem(extension: DataExtension, row: Any) -> str | None:
    if not isinstance(row, dict) or not isinstance(row.get("keys"), dict):
        return "each row needs a keys object"
    keys = row["keys"]
    if sorted(keys) != sorted(extension.primary_keys):
        return f"keys must be exactly the primary key columns {extension.primary_keys}"
    values = row.get("values", {})
    if not isinstance(values, dict):
        return "values must be an object"
    for column, value in {**keys, **values}.items():
        kind = extension.columns.get(column)
        if kind is None:
            return f"the column [{column}] does not exist in the data extension"
        if value is not None and not _typed(kind, value):
            return f"the value for column [{column}] is not a valid {kind}"
    return None


def _typed(kind: str, value: Any) -> bool:
    if kind.startswith("Text"):
        limit = int(kind.partition(":")[2] or 4000)
        return isinstance(value, str | int | float) and len(str(value)) <= limit
    if kind == "Number":
        if isinstance(value, bool):
            return False
        return isinstance(value, int) or (isinstance(value, str) and value.lstrip("-").isdigit())
    if kind == "Boolean":
        return isinstance(value, bool) or str(value).lower() in ("true", "false", "1", "0")
    if kind == "Date":
        try:
            datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    if kind == "EmailAddress":
        return isinstance(value, str) and len(value) <= 254 and bool(_EMAIL.match(value))
    return False


def make_app(fake: SfmcFake | None = None) -> web.Application:
    """The SFMC fake as an aiohttp application; its state is `app[FAKE_KEY]`. Set `fake.base`
    to the URL it is served at (serve_fake does), the rest_instance_url it answers."""
    fake = fake or SfmcFake()
    app = fake_app(FAKE_KEY, fake, client_max_size=MAX_PAYLOAD_BYTES + 1024**2)

    async def handle(request: web.Request) -> web.Response:
        await fake.delay()
        raw = await request.read()
        body = body_json(raw)
        if not fake.base:
            fake.base = f"{request.scheme}://{request.host}"
        entry: dict[str, Any] = {"method": request.method, "path": request.path}
        status, answer, headers = _answer(fake, request, raw, body, entry)
        entry["status"] = status
        fake.record(entry)
        return web.json_response(answer, status=status, headers=headers)

    app.router.add_post(TOKEN_PATH, handle)
    app.router.add_post(ROWSET_ROUTE, handle)
    app.router.add_post(EVENTS_PATH, handle)
    return app


def _answer(fake: SfmcFake, request: web.Request, raw: bytes, body: Any,
            entry: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    try:
        if request.path == TOKEN_PATH:
            # The secret is never recorded: what came is kept without it.
            entry["body"] = ({k: v for k, v in body.items() if k != "client_secret"}
                             if isinstance(body, dict) else None)
            return 200, fake.token(request, body), {}
        entry["body"] = body
        entry["token"] = fake.check_token(request.headers.get("Authorization"))
        fake._take("rest", fake.rate_limit, 1.0)
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return reply.status, reply.body, reply.headers
        if request.path == EVENTS_PATH:
            return 201, fake.event(body), {}
        key = request.match_info["key"]
        if not key.startswith("key:"):
            raise _error(404, "address the data extension by its external key: key:<key>")
        fake.rowset(key.removeprefix("key:"), raw, body)
        return 200, {"ok": True}, {}
    except Refused as refused:
        return refused.status, refused.body, refused.headers


DEMO_CLIENT_ID = "demo-sfmc-client"
DEMO_CLIENT_SECRET = "demo-sfmc-secret"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's SFMC destination (the register_demo_destinations hook)."""
    fake = SfmcFake(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET)
    server = context.serve(make_app(fake))
    fake.base = server.url

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body")
        if entry["path"] == TOKEN_PATH:
            what = "token"
        elif isinstance(body, list):
            what = f"{len(body)} rows"
        elif isinstance(body, dict):
            what = f"{body.get('EventDefinitionKey')} for {body.get('ContactKey')}"
        else:
            what = ""
        return f"{entry['method']} {entry['path']} {what} -> {entry['status']}"

    def state() -> list[str]:
        rows = server.call(lambda: fake.rows("Crossdock_Contacts"))
        events = server.call(lambda: len(fake.events))
        tokens = server.call(lambda: fake.token_requests)
        return [f"row {r['ContactKey']}: {r.get('EmailAddress')}" for r in
                sorted(rows, key=lambda r: r["ContactKey"])] + [
            f"{events} journey entry events; {tokens} token request(s)"]

    return DemoDestination(
        "sfmc",
        {"plugin": "sfmc",
         "settings": {"auth_base_uri": server.url, "client_id": DEMO_CLIENT_ID,
                      "client_secret": DEMO_CLIENT_SECRET, "account_id": DEFAULT_MID},
         # The contact key is the userId: the anonymous visitor is skipped by the rule
         # instead of dead-lettered.
         "rules": {"only_identified": True},
         "mapping": {"options": {
             "data_extension": "Crossdock_Contacts",
             "columns": {"email": "EmailAddress", "firstName": "FirstName",
                         "lastName": "LastName", "plan": "Plan"},
             "journeys": {"Order Completed": "Crossdock-Order-Completed"},
             "default_journey": "Crossdock-Events"}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Salesforce Marketing Cloud contract fake.", 8093)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    args = parser.parse_args(argv)
    fake = SfmcFake(client_id=args.client_id, client_secret=args.client_secret,
                    latency=args.latency)
    run_fake(make_app(fake), args, "SFMC fake on {url} (client " + args.client_id
             + "; auth_base_uri {url}; GET /_fake/received)")


if __name__ == "__main__":
    main()

"""Contract fake of Salesforce Commerce Cloud (B2C Commerce): Account Manager's token route and
an instance's OCAPI Data API customer resource on one server, refusing what they refuse.

    POST  /dwsso/oauth2/access_token                                   client credentials
    PATCH /s/-/dw/data/{version}/customer_lists/{list}/customers/{no}  update a customer
    GET   /s/-/dw/data/{version}/customer_lists/{list}/customers/{no}  read one

The contract it enforces (sources on docs/destinations/sfcc.md):
- the token route takes a form with grant_type client_credentials and the API client's id
  and password as HTTP Basic (else 400 invalid_request / unsupported_grant_type, 401
  invalid_client); it answers access_token, token_type Bearer and expires_in (1799 s: 30
  minutes); too many token requests in a minute (`token_rate_limit`, none unless set) -> 429;
- Data API requests carry `Authorization: Bearer <token>` with a token it issued that has not
  expired on its clock -> else 401 fault AuthorizationHeaderMissingException,
  InvalidAuthorizationHeaderException or InvalidAccessTokenException;
- the URL's version is v<YY>_<N> (400 InvalidVersionException) and one it serves (404
  VersionNotFoundException); a customer list it holds (404 CustomerListNotFoundException) and
  a customer number in it (404 CustomerNotFoundException);
- a PATCH body is JSON (415 UnsupportedContentTypeException otherwise), at most 5 MB (413),
  an object (400 BodyDecodingException) whose `_v`, if any, is the URL's version (400
  UnexpectedVersionException); each property a writable one of the Customer document (400
  UnknownPropertyException; PropertyNotPermittedException for read-only ones), of its type
  (400 TypeDecodingException) and length (400 PropertyConstraintViolationException); a c_
  custom attribute defined on the Customer object, of its type (400
  InvalidCustomPropertyException); it answers 200 with the customer document;
- requests per second beyond `rate_limit` (none unless set) -> 429.
Faults are answered as OCAPI does: `{"_v": "23.2", "fault": {"type", "message", "arguments"}}`.
Scripted replies (`fake.script([500])`) answer the Data API routes; `token_script` the token
route. Faults (hang, reset) meet every route.

    python -m crossdock.plugins.sfcc.fake --port 8094
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from crossdock.destination import basic_auth
from crossdock.plugins.sfcc.const import (
    CUSTOM,
    DATE_PROPERTIES,
    INTEGER_PROPERTIES,
    MAX_BODY_BYTES,
    READ_ONLY,
    TEXT_PROPERTIES,
    VERSION,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import Refused, body_json, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake
from crossdock.testing.faketokens import OAuthFakeState

FAKE_KEY: web.AppKey[SfccFake] = web.AppKey("sfcc_fake")
TOKEN_PATH = "/dwsso/oauth2/access_token"
CUSTOMER_ROUTE = "/s/-/dw/data/{version}/customer_lists/{list_id}/customers/{customer_no}"
DEFAULT_CLIENT_ID = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"
DEFAULT_CLIENT_SECRET = "sfcc-api-client-password"
DEFAULT_LIST = "RefArch"
#: what expires_in says: Account Manager's client-credentials tokens live 30 minutes
TOKEN_LIFETIME = 1799
#: the Data API versions it serves
VERSIONS = frozenset({"v21_3", "v22_10", "v23_1", "v23_2"})


def fault(status: int, kind: str, message: str, **arguments: Any) -> Refused:
    body: dict[str, Any] = {"_v": "23.2", "fault": {"type": kind, "message": message}}
    if arguments:
        body["fault"]["arguments"] = arguments
    return Refused(status, body)


def _oauth_error(status: int, error: str, description: str) -> Refused:
    return Refused(status, {"error": error, "error_description": description})


def default_custom_attributes() -> dict[str, str]:
    """The Customer system object's custom attributes the fake defines: id -> type."""
    return {"c_loyaltyTier": "string", "c_lifetimeValue": "number", "c_smsOptIn": "boolean"}


@dataclass
class SfccFake(OAuthFakeState):
    """What the fake organization knows (its API client, customer lists, custom attributes)
    and holds (tokens, customers, every request it answered)."""

    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    lifetime: int = TOKEN_LIFETIME
    #: token requests per minute (None: no limit)
    token_rate_limit: int | None = None
    #: Data API requests per second (None: no limit)
    rate_limit: int | None = None
    #: customer list -> customer number -> the customer document
    lists: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {DEFAULT_LIST: {}})
    custom_attributes: dict[str, str] = field(default_factory=default_custom_attributes)
    #: the demo's shop: a customer number it does not hold registers as it is first updated
    #: (as shoppers register on the storefront), instead of CustomerNotFoundException
    open_registration: bool = False

    def reset(self) -> None:
        super().reset()
        with self._lock:
            for customers in self.lists.values():
                customers.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(lists=copy.deepcopy(self.lists))
        return snap

    def register(self, *numbers: str, list_id: str = DEFAULT_LIST, **properties: Any) -> None:
        """Customers who registered on the storefront: the numbers an update may name."""
        with self._lock:
            for number in numbers:
                self.lists[list_id][number] = {"customer_no": number, **properties}

    def customer(self, number: str, list_id: str = DEFAULT_LIST) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.lists[list_id][number])

    # -- the token route ---------------------------------------------------------------

    def token(self, request: web.Request, raw: bytes) -> dict[str, Any]:
        scripted = self.token_asked()
        self._take("token", self.token_rate_limit, 60.0, oauth=True)
        if scripted is not None:
            raise _oauth_error(scripted, "temporarily_unavailable", "scripted")
        if request.content_type != "application/x-www-form-urlencoded":
            raise _oauth_error(400, "invalid_request", "the body must be a form")
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "client_credentials":
            raise _oauth_error(400, "unsupported_grant_type",
                               "grant_type must be client_credentials")
        if request.headers.get("Authorization") != basic_auth(self.client_id,
                                                              self.client_secret):
            raise _oauth_error(401, "invalid_client", "Client authentication failed")
        token = self.tokens.issue(self.lifetime)
        return {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime,
                "scope": "mail tenantFilter profile"}

    # -- the Data API ------------------------------------------------------------------

    def check_token(self, authorization: str | None) -> int:
        """The issue number of the live token the request carries, else a 401 fault."""
        if authorization is None:
            raise fault(401, "AuthorizationHeaderMissingException",
                        "Authorization header is missing.")
        if not authorization.startswith("Bearer "):
            raise fault(401, "InvalidAuthorizationHeaderException",
                        "Invalid Authorization header. Value should be something like "
                        "'Bearer {access_token}'.")
        number = self.tokens.number(authorization.removeprefix("Bearer "))
        if number is None:
            raise fault(401, "InvalidAccessTokenException",
                        "The OAuth access token sent via Authorization: Bearer header is "
                        "invalid.")
        return number

    def _take(self, name: str, limit: int | None, seconds: float, *, oauth: bool = False
              ) -> None:
        if limit is None:
            return
        taken = self.window(name, limit, seconds).take(name)
        if not taken.allowed:
            retry = taken.headers(("l", "r", "Retry-After"))["Retry-After"]
            refused = (_oauth_error(429, "slow_down", "too many token requests") if oauth
                       else fault(429, "QuotaExceededException", "Too many requests."))
            refused.headers["Retry-After"] = retry
            raise refused

    def locate(self, version: str, list_id: str, number: str) -> dict[str, dict[str, Any]]:
        if not VERSION.match(version):
            raise fault(400, "InvalidVersionException",
                        "Version is missing or malformed in request URL.")
        if version not in VERSIONS:
            raise fault(404, "VersionNotFoundException", f"Version '{version}' is unknown.",
                        version=version)
        customers = self.lists.get(list_id)
        if customers is None:
            raise fault(404, "CustomerListNotFoundException",
                        f"No customer list with ID '{list_id}' could be found.",
                        listId=list_id)
        if number not in customers and not self.open_registration:
            raise fault(404, "CustomerNotFoundException",
                        f"No customer with number '{number}' found in customer list "
                        f"'{list_id}'.", customerNo=number)
        return customers

    def update(self, version: str, list_id: str, number: str, request: web.Request,
               raw: bytes, body: Any) -> dict[str, Any]:
        customers = self.locate(version, list_id, number)
        if len(raw) > MAX_BODY_BYTES:
            raise fault(413, "RequestEntityTooLargeException",
                        "Request body size limit of 5 MB has been exceeded.")
        if request.content_type != "application/json":
            raise fault(415, "UnsupportedContentTypeException",
                        f"Unsupported media type '{request.content_type}'.",
                        contentType=request.content_type)
        if not isinstance(body, dict):
            raise fault(400, "BodyDecodingException", "The request document couldn't be "
                        "decoded.")
        expected = version[1:].replace("_", ".")
        if "_v" in body and body["_v"] != expected:
            raise fault(400, "UnexpectedVersionException",
                        f"The version of the request document is invalid. It has to be "
                        f"the URL version '{expected}'.", version=str(body["_v"]))
        changes = {k: v for k, v in body.items() if k != "_v"}
        for prop, value in changes.items():
            self._check(prop, value)
        with self._lock:
            customer = customers.setdefault(number, {"customer_no": number})
            customer.update(changes)
            return {"_v": expected, "_type": "customer", **copy.deepcopy(customer)}

    def _check(self, prop: str, value: Any) -> None:
        if prop in READ_ONLY or prop == "customer_no":
            raise fault(400, "PropertyNotPermittedException",
                        f"The property '{prop}' isn't permitted to be modified.",
                        property=prop, document="customer")
        if CUSTOM.match(prop):
            kind = self.custom_attributes.get(prop)
            if kind is None or not _custom_typed(kind, value):
                raise fault(400, "InvalidCustomPropertyException",
                            f"Can't write custom property '{prop}'. Value is either invalid "
                            "or type doesn't support modification.")
            return
        if prop in TEXT_PROPERTIES:
            if value is not None and not isinstance(value, str):
                raise _type(prop, "String", value)
            if value is not None and len(value) > TEXT_PROPERTIES[prop]:
                raise fault(400, "PropertyConstraintViolationException",
                            f"The value of '{prop}' is longer than {TEXT_PROPERTIES[prop]} "
                            "characters.", document="customer", path=prop)
            return
        if prop in DATE_PROPERTIES:
            if not isinstance(value, str) or not _local_date(value):
                raise _type(prop, "LocalDate (yyyy-MM-dd)", value)
            return
        if prop in INTEGER_PROPERTIES:
            if not isinstance(value, int) or isinstance(value, bool) or value not in (1, 2):
                raise _type(prop, "Integer (1, 2)", value)
            return
        raise fault(400, "UnknownPropertyException",
                    f"The property '{prop}' is unknown in document 'customer'.",
                    property=prop, document="customer")


def _type(prop: str, expected: str, value: Any) -> Refused:
    return fault(400, "TypeDecodingException",
                 f"The type of '{prop}' is invalid: expected {expected}.",
                 path=prop, expectedTypes=expected, actualType=type(value).__name__)


def _custom_typed(kind: str, value: Any) -> bool:
    if value is None:
        return True
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, str)


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _local_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def make_app(fake: SfccFake | None = None) -> web.Application:
    """The SFCC fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or SfccFake()
    app = fake_app(FAKE_KEY, fake, client_max_size=MAX_BODY_BYTES + 1024**2)

    async def handle(request: web.Request) -> web.Response:
        await fake.delay()
        raw = await request.read()
        entry: dict[str, Any] = {"method": request.method, "path": request.path}
        status, answer, headers = _answer(fake, request, raw, entry)
        entry["status"] = status
        fake.record(entry)
        return web.json_response(answer, status=status, headers=headers)

    app.router.add_post(TOKEN_PATH, handle)
    app.router.add_patch(CUSTOMER_ROUTE, handle)
    app.router.add_get(CUSTOMER_ROUTE, handle)
    return app


def _answer(fake: SfccFake, request: web.Request, raw: bytes, entry: dict[str, Any]
            ) -> tuple[int, Any, dict[str, str]]:
    try:
        if request.path == TOKEN_PATH:
            # The client's password is never recorded: only the grant asked for.
            entry["body"] = raw.decode("utf-8", "replace")
            return 200, fake.token(request, raw), {}
        body = body_json(raw)
        entry["body"] = body
        entry["token"] = fake.check_token(request.headers.get("Authorization"))
        fake._take("rest", fake.rate_limit, 1.0)
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return reply.status, reply.body, reply.headers
        m = request.match_info
        if request.method == "GET":
            customers = fake.locate(m["version"], m["list_id"], m["customer_no"])
            with fake._lock:
                found = copy.deepcopy(customers.get(m["customer_no"]) or {})
            return 200, {"_type": "customer", **found}, {}
        return 200, fake.update(m["version"], m["list_id"], m["customer_no"], request, raw,
                                body), {}
    except Refused as refused:
        return refused.status, refused.body, refused.headers


DEMO_CLIENT_ID = "demo-sfcc-client"
DEMO_CLIENT_SECRET = "demo-sfcc-password"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's SFCC destination (the register_demo_destinations hook)."""
    fake = SfccFake(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET,
                    open_registration=True)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body")
        what = ("token" if entry["path"] == TOKEN_PATH else
                ", ".join(sorted(body)) if isinstance(body, dict) else "")
        return f"{entry['method']} {entry['path']} {what} -> {entry['status']}"

    def state() -> list[str]:
        customers = server.call(lambda: copy.deepcopy(fake.lists[DEFAULT_LIST]))
        tokens = server.call(lambda: fake.token_requests)
        return [f"customer {no}: {c.get('email')} {c.get('first_name')}"
                for no, c in sorted(customers.items())] + [f"{tokens} token request(s)"]

    return DemoDestination(
        "sfcc",
        {"plugin": "sfcc",
         "settings": {"base_url": server.url, "token_url": server.url + TOKEN_PATH,
                      "client_id": DEMO_CLIENT_ID, "client_secret": DEMO_CLIENT_SECRET,
                      "customer_list": DEFAULT_LIST},
         # The customer number is the userId: the anonymous visitor is skipped by the rule
         # instead of dead-lettered.
         "rules": {"only_identified": True},
         "mapping": {"options": {"attributes": {"lifetime_value": "c_lifetimeValue"}}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Salesforce Commerce Cloud contract fake.", 8094)
    parser.add_argument("--client-id", default=DEFAULT_CLIENT_ID)
    parser.add_argument("--client-secret", default=DEFAULT_CLIENT_SECRET)
    parser.add_argument("--open-registration", action="store_true",
                        help="take an update of a customer number it does not hold")
    args = parser.parse_args(argv)
    fake = SfccFake(client_id=args.client_id, client_secret=args.client_secret,
                    latency=args.latency, open_registration=args.open_registration)
    run_fake(make_app(fake), args, "SFCC fake on {url} (client " + args.client_id
             + "; base_url {url}, token_url {url}" + TOKEN_PATH + "; GET /_fake/received)")


if __name__ == "__main__":
    main()

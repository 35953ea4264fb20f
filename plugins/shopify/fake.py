"""Contract fake of Shopify's GraphQL Admin API (customers, their marketing consent, tags): a
real HTTP server that refuses what Shopify refuses.

    POST /admin/api/{version}/graphql.json   {"query": ..., "variables": {...}}

    query     customers(first, query: "email:\"...\"")  { nodes { id tags } }
    mutation  customerCreate(input)  customerUpdate(input)
              customerEmailMarketingConsentUpdate(input)  customerSmsMarketingConsentUpdate(input)
              tagsAdd(id, tags)  tagsRemove(id, tags)

The contract it enforces (sources on docs/destinations/shopify.md):
- the X-Shopify-Access-Token header: missing or wrong -> 401 {"errors": "[API] Invalid API
  key or access token (unrecognized login or wrong password)"};
- a field the schema does not have -> 200 with `errors` (code undefinedField); a variable the
  document uses but the request lacks -> 200 with `errors` (INVALID_VARIABLE);
- calculated query cost in a leaky bucket per app and store (`maximum` points, refilled at
  `restore_rate` a second): each answer carries extensions.cost {requestedQueryCost,
  actualQueryCost, throttleStatus {maximumAvailable, currentlyAvailable, restoreRate}}; a
  query costing more than is available -> `errors` [{"message": "Throttled", "extensions":
  {"code": "THROTTLED"}}], with HTTP 200 (or `throttled_status=429`, with Retry-After);
- customers: email and phone unique ("has already been taken"), the phone in E.164, email
  marketing consent needs an email and SMS consent a phone; marketingState SUBSCRIBED,
  UNSUBSCRIBED or PENDING, marketingOptInLevel SINGLE_OPT_IN, CONFIRMED_OPT_IN or UNKNOWN;
  customerUpdate does not change consent (its own mutations do); a tag has at most 255
  characters; an id that is no customer -> userErrors (HTTP 200).
Scripted replies (`fake.script([500])`) answer first.

    python -m crossdock.plugins.shopify.fake --port 8094 --token shpat_demo
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crossdock.plugins.shopify.const import (
    GRAPHQL_PATH,
    MAX_TAG_LENGTH,
    OPT_IN_LEVELS,
    SETTABLE_STATES,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import LeakyBucket
from crossdock.testing.fakescript import FakeState, fake_app, json_handler
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[ShopifyFake] = web.AppKey("shopify_fake")
DEFAULT_TOKEN = "shpat_test_token"
BAD_TOKEN = "[API] Invalid API key or access token (unrecognized login or wrong password)"
QUERY_FIELDS = frozenset({"customers"})
MUTATION_FIELDS = frozenset({"customerCreate", "customerUpdate",
                             "customerEmailMarketingConsentUpdate",
                             "customerSmsMarketingConsentUpdate", "tagsAdd", "tagsRemove"})
#: what each root field costs: a connection of one node 2 points, a mutation 10 (Shopify's
#: "Cost calculation": objects 1, connections 2 + the nodes, mutations 10)
COSTS = {"customers": 2, **{name: 10 for name in MUTATION_FIELDS}}
CUSTOMER_INPUT = frozenset({"id", "email", "firstName", "lastName", "phone", "locale", "note",
                            "tags", "emailMarketingConsent", "smsMarketingConsent",
                            "taxExempt"})
_EMAIL = re.compile(r"^[^@\s\"]+@[^@\s\"]+\.[^@\s\"]+$")
_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_OPERATION = re.compile(r"^\s*(query|mutation)\b\s*\w*\s*(\([^)]*\))?\s*\{(.*)\}\s*$", re.S)
_ARGUMENT = re.compile(r"(\w+)\s*:\s*(\$\w+|-?\d+|\"(?:[^\"\\]|\\.)*\")")
_EMAIL_SEARCH = re.compile(r'^email:"?([^"]+)"?$')


class GraphQLError(Exception):
    """A top-level error: the document cannot run (HTTP 200, `errors`)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@dataclass
class ShopifyFake(FakeState):
    """What the Shopify fake knows (the token, the bucket) and holds (customers by id)."""

    token: str = DEFAULT_TOKEN
    maximum: float = 1000.0
    restore_rate: float = 100.0
    #: the HTTP status of a throttled answer: 200 as the GraphQL reference shows, or 429
    throttled_status: int = 200
    clock: Callable[[], float] = time.monotonic
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    _bucket: LeakyBucket | None = field(default=None, repr=False)
    _made: int = field(default=0, repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.customers.clear()
            self._bucket = None

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap["customers"] = copy.deepcopy(self.customers)
        return snap

    def statuses(self) -> list[int]:
        return [r["status"] for r in self.received]

    def bucket(self) -> LeakyBucket:
        with self._lock:
            if self._bucket is None:
                self._bucket = LeakyBucket(self.maximum, self.restore_rate, self.clock)
            return self._bucket

    def by_email(self, email: str) -> dict[str, Any] | None:
        with self._lock:
            return next((c for c in self.customers.values()
                         if str(c.get("email") or "").lower() == email.lower()), None)

    # -- the schema --------------------------------------------------------------------

    def run(self, document: str, variables: dict[str, Any]
            ) -> tuple[list[tuple[str, dict[str, Any]]], int]:
        """(the root fields with their arguments, the requested cost) of one document;
        GraphQLError when it cannot run."""
        match = _OPERATION.match(document)
        if match is None:
            raise GraphQLError("syntax error: a query or mutation operation is expected",
                               "parseError")
        kind, body = match.group(1), match.group(3)
        allowed, root = ((QUERY_FIELDS, "QueryRoot") if kind == "query"
                         else (MUTATION_FIELDS, "Mutation"))
        fields = _root_fields(body)
        for name, _ in fields:
            if name not in allowed:
                raise GraphQLError(f"Field '{name}' doesn't exist on type '{root}'",
                                   "undefinedField")
        resolved = []
        for name, raw in fields:
            arguments = {}
            for key, value in _ARGUMENT.findall(raw):
                if value.startswith("$"):
                    if value[1:] not in variables:
                        raise GraphQLError(f"Variable {value} of the operation was not "
                                           "provided", "INVALID_VARIABLE")
                    arguments[key] = variables[value[1:]]
                elif value.startswith('"'):
                    arguments[key] = value[1:-1]
                else:
                    arguments[key] = int(value)
            resolved.append((name, arguments))
        cost = sum(COSTS[name] for name, _ in resolved)
        return resolved, cost

    def execute(self, resolved: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for name, arguments in resolved:
            data[name] = getattr(self, f"_{name}")(arguments)
        return data

    def _customers(self, args: dict[str, Any]) -> dict[str, Any]:
        first = args.get("first")
        if not isinstance(first, int) or not 0 < first <= 250:
            raise GraphQLError("first: between 1 and 250", "INVALID_VARIABLE")
        search = _EMAIL_SEARCH.match(str(args.get("query") or ""))
        found = self.by_email(search.group(1)) if search else None
        nodes = [{"id": found["id"], "tags": list(found["tags"])}] if found else []
        return {"nodes": nodes[:first]}

    def _customerCreate(self, args: dict[str, Any]) -> dict[str, Any]:
        data = _input(args)
        if "id" in data:
            return _no_customer(["id"], "Id is not allowed when creating a customer")
        errors = self._check(data, None)
        if not data.get("email") and not data.get("phone"):
            errors.append((["email"], "A name, phone number, or email address must be present"))
        if errors:
            return _no_customer(*errors[0])
        with self._lock:
            self._made += 1
            customer_id = f"gid://shopify/Customer/{1000 + self._made}"
            customer: dict[str, Any] = {"id": customer_id, "email": data.get("email"), "tags": [],
                        "emailMarketingConsent": {"marketingState": "NOT_SUBSCRIBED"},
                        "smsMarketingConsent": None}
            self._apply(customer, data)
            self.customers[customer_id] = customer
        return {"customer": {"id": customer_id}, "userErrors": []}

    def _customerUpdate(self, args: dict[str, Any]) -> dict[str, Any]:
        data = _input(args)
        customer = self.customers.get(str(data.get("id")))
        if customer is None:
            return _no_customer(["id"], "Customer does not exist")
        for consent in ("emailMarketingConsent", "smsMarketingConsent"):
            if consent in data:
                mutation = "customer" + consent[0].upper() + consent[1:] + "Update"
                return _no_customer([consent], f"To update {consent}, please use the {mutation} "
                                          "Mutation instead")
        errors = self._check(data, customer["id"])
        if errors:
            return _no_customer(*errors[0])
        with self._lock:
            self._apply(customer, data)
        return {"customer": {"id": customer["id"]}, "userErrors": []}

    def _customerEmailMarketingConsentUpdate(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._consent(args, "emailMarketingConsent", "email")

    def _customerSmsMarketingConsentUpdate(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._consent(args, "smsMarketingConsent", "phone")

    def _consent(self, args: dict[str, Any], key: str, channel: str) -> dict[str, Any]:
        data = _input(args)
        customer = self.customers.get(str(data.get("customerId")))
        if customer is None:
            return _errors(["input", "customerId"], "Customer not found", "INVALID")
        if not customer.get(channel):
            what = "an email address" if channel == "email" else "a phone number"
            return _errors(["input", key], f"The customer must have {what}",
                           "MISSING_ARGUMENT")
        problem = _consent_problem(data.get(key))
        if problem:
            return _errors(["input", key], problem, "INVALID")
        with self._lock:
            customer[key] = dict(data[key])
        return {"userErrors": []}

    def _tagsAdd(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._tags(args, add=True)

    def _tagsRemove(self, args: dict[str, Any]) -> dict[str, Any]:
        return self._tags(args, add=False)

    def _tags(self, args: dict[str, Any], *, add: bool) -> dict[str, Any]:
        customer = self.customers.get(str(args.get("id")))
        if customer is None:
            return _errors(["id"], "Resource not found")
        tags = args.get("tags") or []
        if any(not isinstance(t, str) or len(t) > MAX_TAG_LENGTH for t in tags):
            return _errors(["tags"], f"Tags must be {MAX_TAG_LENGTH} characters or fewer")
        with self._lock:
            if add:
                customer["tags"] = sorted(set(customer["tags"]) | set(tags))
            else:
                customer["tags"] = [t for t in customer["tags"] if t not in tags]
        return {"userErrors": []}

    def _check(self, data: dict[str, Any], own_id: str | None
               ) -> list[tuple[list[str], str]]:
        unknown = sorted(set(data) - CUSTOMER_INPUT)
        if unknown:
            raise GraphQLError(f"Variable $input of type CustomerInput! was provided invalid "
                               f"value for {unknown[0]} (Field is not defined on "
                               "CustomerInput)", "INVALID_VARIABLE")
        errors: list[tuple[list[str], str]] = []
        email, phone = data.get("email"), data.get("phone")
        if email is not None:
            if not _EMAIL.match(str(email)):
                errors.append((["email"], "Email is invalid"))
            else:
                other = self.by_email(str(email))
                if other is not None and other["id"] != own_id:
                    errors.append((["email"], "Email has already been taken"))
        if phone is not None:
            if not _E164.match(str(phone)):
                errors.append((["phone"], "Phone is invalid"))
            elif any(c.get("phone") == phone and c["id"] != own_id
                     for c in self.customers.values()):
                errors.append((["phone"], "Phone has already been taken"))
        if "emailMarketingConsent" in data:
            if not email:
                errors.append((["emailMarketingConsent"], "An email address is required to "
                                                          "set the email marketing consent"))
            problem = _consent_problem(data["emailMarketingConsent"])
            if problem:
                errors.append((["emailMarketingConsent"], problem))
        if "smsMarketingConsent" in data:
            if not phone:
                errors.append((["smsMarketingConsent"], "A phone number is required to set "
                                                        "the SMS marketing consent"))
            problem = _consent_problem(data["smsMarketingConsent"])
            if problem:
                errors.append((["smsMarketingConsent"], problem))
        for tag in data.get("tags") or []:
            if len(str(tag)) > MAX_TAG_LENGTH:
                errors.append((["tags"], f"Tags must be {MAX_TAG_LENGTH} characters or fewer"))
        return errors

    @staticmethod
    def _apply(customer: dict[str, Any], data: dict[str, Any]) -> None:
        for key, value in data.items():
            if key == "id":
                continue
            customer[key] = list(value) if key == "tags" else copy.deepcopy(value)


def _input(args: dict[str, Any]) -> dict[str, Any]:
    data = args.get("input")
    if not isinstance(data, dict):
        raise GraphQLError("Variable $input of the operation must be an object",
                           "INVALID_VARIABLE")
    return data


def _errors(field: list[str], message: str, code: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"field": field, "message": message}
    if code is not None:
        error["code"] = code
    return {"userErrors": [error]}


def _no_customer(field: list[str], message: str) -> dict[str, Any]:
    """A customerCreate / customerUpdate answer that changed nothing: customer null."""
    return {"customer": None, **_errors(field, message)}


def _consent_problem(consent: Any) -> str | None:
    if not isinstance(consent, dict):
        return "must be an object"
    if consent.get("marketingState") not in SETTABLE_STATES:
        return "marketingState: SUBSCRIBED, UNSUBSCRIBED or PENDING"
    level = consent.get("marketingOptInLevel")
    if level is not None and level not in OPT_IN_LEVELS:
        return "marketingOptInLevel: SINGLE_OPT_IN, CONFIRMED_OPT_IN or UNKNOWN"
    return None


def _root_fields(body: str) -> list[tuple[str, str]]:
    """The selection's top-level fields with their arguments: (name, "arg: $x, ...")."""
    fields: list[tuple[str, str]] = []
    depth, i = 0, 0
    while i < len(body):
        char = body[i]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif depth == 0 and (char.isalpha() or char == "_"):
            match = re.match(r"(\w+)\s*(\(([^()]*)\))?", body[i:])
            assert match is not None
            fields.append((match.group(1), match.group(3) or ""))
            i += match.end()
            continue
        i += 1
    return fields


def make_app(fake: ShopifyFake | None = None) -> web.Application:
    """The Shopify fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or ShopifyFake()
    app = fake_app(FAKE_KEY, fake)

    graphql = json_handler(fake, lambda request, body: _answer(fake, request, body))

    app.router.add_post(GRAPHQL_PATH.format(version="{version}"), graphql)
    return app


def _answer(fake: ShopifyFake, request: web.Request, body: Any) -> web.Response:
    headers = {"X-Shopify-API-Version": request.match_info["version"]}
    if request.headers.get("X-Shopify-Access-Token") != fake.token:
        return web.json_response({"errors": BAD_TOKEN}, status=401, headers=headers)
    reply = fake.next_reply()
    if reply is not None and not reply.passes:
        return reply.response()
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return web.json_response({"errors": {"query": "Required parameter missing or "
                                                      "invalid"}}, status=400, headers=headers)
    variables = body.get("variables") or {}
    bucket = fake.bucket()
    try:
        planned, cost = fake.run(body["query"], variables if isinstance(variables, dict)
                                 else {})
    except GraphQLError as error:
        return web.json_response({"errors": [{"message": error.message, "extensions": {
            "code": error.code}}]}, headers=headers)
    taken, available = bucket.take(cost)
    status = {"maximumAvailable": bucket.maximum, "currentlyAvailable": available,
              "restoreRate": bucket.rate}
    if not taken:
        wait = math.ceil((cost - available) / bucket.rate)
        throttled = {"errors": [{"message": "Throttled", "extensions": {
            "code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
            "extensions": {"cost": {"requestedQueryCost": cost, "actualQueryCost": None,
                                    "throttleStatus": status}}}
        if fake.throttled_status == 429:
            headers["Retry-After"] = str(max(1, wait))
        return web.json_response(throttled, status=fake.throttled_status, headers=headers)
    try:
        data = fake.execute(planned)
    except GraphQLError as error:
        bucket.refund(cost)
        return web.json_response({"errors": [{"message": error.message, "extensions": {
            "code": error.code}}]}, headers=headers)
    return web.json_response({"data": data, "extensions": {"cost": {
        "requestedQueryCost": cost, "actualQueryCost": cost, "throttleStatus": status}}},
        headers=headers)


DEMO_TOKEN = "shpat_demo_token"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Shopify destination (the register_demo_destinations hook)."""
    fake = ShopifyFake(token=DEMO_TOKEN)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        assert isinstance(body, dict)
        name = re.match(r"\s*\w+\s+(\w+)", str(body.get("query") or ""))
        return f"POST graphql {name.group(1) if name else '?'} -> {entry['status']}"

    def state() -> list[str]:
        customers = server.call(lambda: copy.deepcopy(fake.customers))
        return [f"customer {c.get('email')}: email "
                f"{(c.get('emailMarketingConsent') or {}).get('marketingState')}, tags "
                f"{','.join(c['tags']) or '-'}"
                for c in sorted(customers.values(), key=lambda c: str(c.get("email")))]

    return DemoDestination(
        "shopify",
        {"plugin": "shopify",
         "settings": {"shop": "demo-store", "base_url": server.url,
                      "access_token": DEMO_TOKEN},
         # The demo's anonymous visitor has no email, the customer's key: skipped by the
         # rule instead of dead-lettered.
         "rules": {"only_identified": True},
         # Only membership events become tags; identifies pass (the filter names events).
         "filter": {"events": {"allow": ["audience_entered", "audience_exited"]}},
         # One message at a time keeps a person's enter and leave in order.
         "delivery": {"concurrency": 1}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        audience=True,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Shopify GraphQL Admin API contract fake.", 8094)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    args = parser.parse_args(argv)
    fake = ShopifyFake(token=args.token, latency=args.latency)
    run_fake(make_app(fake), args, f"Shopify fake on {{url}} (token {args.token}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()

"""Contract fake of Pipedrive's API (persons v2, person search v2, activities v2, notes v1): a
real HTTP server that refuses what Pipedrive refuses.

    GET   /api/v2/persons/search?term=&fields=&exact_match=   search persons  -> 200
    POST  /api/v2/persons                                    add a person    -> 200
    PATCH /api/v2/persons/{id}                               update a person -> 200 / 404
    POST  /api/v2/activities                                 add an activity -> 200
    POST  /api/v1/notes                                      add a note      -> 200
    GET   /api/v2/activities?person_id=&sort_by=&limit=      activities      -> 200
    GET   /api/v1/notes?person_id=&sort=&start_date=&limit=  notes           -> 200

Answers are Pipedrive's envelope: `{"success": true, "data": ...}`, or an error status with
`{"success": false, "error": ..., "error_info": ...}`. The contract it enforces (sources on
docs/destinations/pipedrive.md):
- auth: the `x-api-token` header (v1 also takes the `api_token` query parameter, v2 does not),
  or `Authorization: Bearer <OAuth access token>` of a token it issued that has not expired
  on its clock -> else 401;
- OAuth: `POST /oauth/token` (oauth.pipedrive.com's, served here too) takes the app's
  client_id and client_secret in a Basic header (else 401 invalid_client) and a form with
  grant_type=refresh_token and a refresh token it issued (else 400 invalid_grant /
  unsupported_grant_type); it answers access_token, token_type Bearer, a new refresh_token (the
  old one then stops working: the stricter reading), scope, expires_in (3600) and api_domain,
  its own address (the company's API host);
- search: a term of at least 2 characters (1 with exact_match), `fields` among custom_fields,
  email, notes, phone, name; exact matches are not case-sensitive. A person created or changed
  is found only `search_delay` seconds later (Pipedrive's search index lags its writes);
- persons: a `name` to create one; `emails` / `phones` lists of {value, primary, label};
  `custom_fields` by their 40-character keys with values of the field's type (v2 coerces
  nothing: a number field takes no "42"); `owner_id` a user of the company; `visible_to` 1, 3,
  5 or 7; `marketing_status` one of no_consent, unsubscribed, subscribed, archived, changed at
  most once from an old status to a new one (a further change is ignored), and never set for
  a person without an email -> else 400;
- activities: a `subject`, a known `type`, `due_date` YYYY-MM-DD, `due_time` HH:MM, `done` a
  boolean, a person that exists -> else 400;
- notes: `content` and one of person_id, org_id, deal_id, lead_id, project_id, the person
  existing -> else 400;
- lists: notes of a person (v1: `person_id`, `sort` "add_time DESC" or "add_time ASC",
  `start_date` / `end_date` on the add_time's day, `start`, `limit` up to 500; `data` null when
  none), activities of a person (v2: `person_id`, `sort_by` id or add_time, `sort_direction`,
  `limit` up to 500); a note without `add_time` gets the fake's clock's;
- `lost_answers`: the next notes or activities added are kept and answered 504 (the answer
  lost on the way);
- rate limits: per token, `burst` requests per 2-second window, searches also at most 10 per
  window (the Search API's own limit), with `x-ratelimit-limit` / `-remaining` / `-reset` on
  every answer; and a company's daily token
  budget, each request costing what its kind costs (search 40, a write 10) -> 429.
Scripted replies (`fake.script([500])`) answer first.

    python -m crossdock.plugins.pipedrive.fake --port 8091 --api-token demo-token
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from crossdock.destination import basic_auth
from crossdock.plugins.pipedrive.const import (
    ACTIVITIES_PATH,
    BASE_DAILY_BUDGET,
    COST_GET,
    COST_SEARCH,
    COST_WRITE,
    DEFAULT_ACTIVITY_TYPES,
    MARKETING_STATUSES,
    MIN_SEARCH_TERM,
    NOTES_PATH,
    PERSON_PATH,
    PERSONS_PATH,
    SEARCH_BURST,
    SEARCH_PATH,
    TOKEN_HEADER,
    VISIBLE_TO,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState, Refused, body_json, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[PipedriveFake] = web.AppKey("pipedrive_fake")
DEFAULT_TOKEN = "pipedrive-test-token"
OAUTH_TOKEN_PATH = "/oauth/token"
DEFAULT_CLIENT_ID = "pipedrive-app-client"
DEFAULT_CLIENT_SECRET = "pipedrive-app-secret"
DEFAULT_REFRESH = "pipedrive-refresh-0"
#: what expires_in says of an access token
OAUTH_LIFETIME = 3600
#: the custom fields of the fake company's persons, by API key, with their types
DEFAULT_FIELDS = {
    "a" * 40: "varchar",        # e.g. "User id"
    "b" * 40: "double",         # e.g. "Lifetime value"
    "c" * 40: "monetary",
    "d" * 40: "date",
}
SEARCH_FIELDS = frozenset({"custom_fields", "email", "notes", "phone", "name"})
NOTE_TARGETS = ("person_id", "org_id", "deal_id", "lead_id", "project_id")
_DAY = 86_400.0
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def _oauth_refused(status: int, error: str, description: str) -> Refused:
    """A token request the OAuth server refuses (RFC 6749 section 5.2's body)."""
    return Refused(status, {"error": error, "error_description": description})


def _refused(status: int, error: str, info: str = "",
             headers: dict[str, str] | None = None) -> Refused:
    """A request Pipedrive answers with an error status."""
    body: dict[str, Any] = {"success": False, "error": error}
    if info:
        body["error_info"] = info
    return Refused(status, body, headers)


@dataclass
class PipedriveFake(FakeState):
    """What the Pipedrive fake knows (the token, users, person fields, activity types, limits)
    and holds (persons, activities, notes, every request it answered)."""

    api_token: str = DEFAULT_TOKEN
    #: OAuth access tokens that never expire (a test's), beside those it issues
    oauth_tokens: set[str] = field(default_factory=set)
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    refresh_tokens: set[str] = field(default_factory=lambda: {DEFAULT_REFRESH})
    oauth_lifetime: int = OAUTH_LIFETIME
    #: issued access token -> when it expires (the fake's clock)
    issued: dict[str, float] = field(default_factory=dict)
    token_requests: int = 0
    #: the api_domain it answers (its own address, set when first asked)
    base: str = ""
    users: set[int] = field(default_factory=lambda: {1})
    person_fields: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_FIELDS))
    activity_types: set[str] = field(default_factory=lambda: set(DEFAULT_ACTIVITY_TYPES))
    #: seconds before a written person is found by search
    search_delay: float = 0.0
    #: requests per token per 2 s (Essential, api_token: 20); the Search API: 10
    burst: int = 20
    search_burst: int = SEARCH_BURST
    #: the company's daily token budget (None: no budget)
    daily_budget: int | None = BASE_DAILY_BUDGET
    clock: Callable[[], float] = time.time
    persons: dict[int, dict[str, Any]] = field(default_factory=dict)
    activities: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    _indexed_at: dict[int, float] = field(default_factory=dict, repr=False)
    _windows: dict[str, FixedWindow] = field(default_factory=dict, repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.persons.clear()
            self.activities.clear()
            self.notes.clear()
            self._indexed_at.clear()
            self._windows.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(persons=copy.deepcopy(self.persons), activities=list(self.activities),
                        notes=list(self.notes))
        return snap

    def statuses(self) -> list[int]:
        """The status of every answered request, in arrival order."""
        return [r["status"] for r in self.received]

    # -- auth and limits ---------------------------------------------------------------

    def check_auth(self, request: web.Request) -> str:
        """The token the request authenticates with, or Refused 401."""
        header = request.headers.get(TOKEN_HEADER)
        bearer = request.headers.get("Authorization", "")
        if header == self.api_token:
            return header
        if bearer.startswith("Bearer ") and bearer[7:] in self.oauth_tokens:
            return bearer[7:]
        with self._lock:
            expires = self.issued.get(bearer[7:]) if bearer.startswith("Bearer ") else None
        if expires is not None and expires > self.clock():
            return bearer[7:]
        if request.path.startswith("/api/v1/") and request.query.get("api_token") == (
                self.api_token):
            return self.api_token
        raise _refused(401, "unauthorized access", "Please check developers.pipedrive.com for "
                                                   "more information about Pipedrive API.")

    def oauth_token(self, authorization: str | None, form: dict[str, str]
                    ) -> dict[str, Any]:
        """An access token for a refresh token (the old refresh token retired), or
        Refused."""
        with self._lock:
            self.token_requests += 1
        if authorization != basic_auth(self.client_id, self.client_secret):
            raise _oauth_refused(401, "invalid_client", "Client authentication failed")
        if form.get("grant_type") != "refresh_token":
            raise _oauth_refused(400, "unsupported_grant_type", "grant_type: refresh_token")
        with self._lock:
            old = form.get("refresh_token", "")
            if old not in self.refresh_tokens:
                raise _oauth_refused(400, "invalid_grant", "Invalid refresh token")
            self.refresh_tokens.discard(old)
            refresh = f"pipedrive-refresh-{self.token_requests}"
            self.refresh_tokens.add(refresh)
            token = f"pipedrive-access-{self.token_requests}"
            self.issued[token] = self.clock() + self.oauth_lifetime
        return {"access_token": token, "token_type": "Bearer", "refresh_token": refresh,
                "scope": "base,contacts:full,activities:full", "expires_in":
                self.oauth_lifetime, "api_domain": self.base}

    def expire_tokens(self) -> None:
        """Every access token issued so far expires now."""
        with self._lock:
            for token in self.issued:
                self.issued[token] = 0.0

    def take(self, token: str, search: bool, cost: int) -> dict[str, str]:
        """Count a request against the token's 2-second burst limit (a search also against
        the Search API's own) and the company's daily budget: its rate headers, or Refused
        429."""
        limits = [("all", self.burst)] + ([("search", self.search_burst)] if search else [])
        headers: dict[str, str] = {}
        for kind, limit in limits:
            name = f"{kind}:{token}"
            with self._lock:
                window = self._windows.setdefault(name, FixedWindow(limit, 2.0, self.clock))
            taken = window.take(name)
            headers = taken.headers()
            if not taken.allowed:
                raise _refused(429, "Request over limit", "Too many requests in the 2-second "
                                                          "window", headers)
        if self.daily_budget is not None:
            with self._lock:
                budget = self._windows.setdefault(
                    "budget", FixedWindow(self.daily_budget, _DAY, self.clock))
            spent = budget.take("company", cost)
            if not spent.allowed:
                raise _refused(429, "Daily token budget exhausted",
                               "The company's API token budget resets at midnight",
                               {**headers, "Retry-After": str(int(spent.reset) + 1)})
        return headers

    # -- persons -----------------------------------------------------------------------

    def search(self, query: dict[str, str]) -> dict[str, Any]:
        term = query.get("term", "")
        exact = query.get("exact_match", "false").lower() == "true"
        if len(term) < (1 if exact else MIN_SEARCH_TERM):
            raise _refused(400, "term: at least 2 characters (1 with exact_match)")
        fields = [f for f in query.get("fields", "").split(",") if f] or sorted(SEARCH_FIELDS)
        if not set(fields) <= SEARCH_FIELDS:
            raise _refused(400, f"fields: one of {', '.join(sorted(SEARCH_FIELDS))}")
        now = self.clock()
        items = []
        with self._lock:
            for pid, person in sorted(self.persons.items()):
                if now - self._indexed_at.get(pid, 0.0) < self.search_delay:
                    continue
                if any(_matches(value, term, exact) for value in _searchable(person, fields)):
                    items.append({"result_score": 1.0, "item": _search_item(person)})
        return {"success": True, "data": {"items": items},
                "additional_data": {"next_cursor": None}}

    def add_person(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body.get("name")
        if not isinstance(name, str) or not name.strip():
            raise _refused(400, "name: is required")
        person = self._checked(body, None)
        with self._lock:
            pid = max(self.persons, default=0) + 1
            person.update(id=pid, name=name, add_time=_now_rfc3339(self.clock()))
            person.setdefault("emails", [])
            person.setdefault("phones", [])
            person.setdefault("custom_fields", {})
            if "marketing_status" in person and not person["emails"]:
                del person["marketing_status"]  # not set without an email
            person.setdefault("marketing_status", "no_consent")
            self.persons[pid] = person
            self._indexed_at[pid] = self.clock()
        return person

    def update_person(self, pid: int, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            known = self.persons.get(pid)
        if known is None:
            raise _refused(404, "Person not found")
        changes = self._checked(body, known)
        with self._lock:
            fields = changes.pop("custom_fields", {})
            known["custom_fields"].update(fields)
            status = changes.pop("marketing_status", None)
            if status is not None and status != known["marketing_status"] and known["emails"] \
                    and not known.get("_marketing_changed"):
                known["marketing_status"] = status
                known["_marketing_changed"] = True
            known.update(changes)
            self._indexed_at[pid] = self.clock()
        return known

    def _checked(self, body: dict[str, Any], known: dict[str, Any] | None) -> dict[str, Any]:
        """The fields of a person body, checked as v2 checks them (nothing coerced)."""
        out: dict[str, Any] = {}
        for key, value in body.items():
            if key == "name":
                if not isinstance(value, str) or not value.strip():
                    raise _refused(400, "name: must be a non-empty string")
                out[key] = value
            elif key in ("emails", "phones"):
                out[key] = _contacts(key, value)
            elif key == "owner_id":
                if isinstance(value, bool) or not isinstance(value, int) or value not in (
                        self.users):
                    raise _refused(400, "owner_id: not a user of this company")
                out[key] = value
            elif key == "visible_to":
                if value not in VISIBLE_TO or isinstance(value, bool):
                    raise _refused(400, "visible_to: one of 1, 3, 5, 7")
                out[key] = value
            elif key == "marketing_status":
                if value not in MARKETING_STATUSES:
                    raise _refused(400, f"marketing_status: one of {', '.join(MARKETING_STATUSES)}")
                out[key] = value
            elif key == "custom_fields":
                out[key] = self._custom_fields(value)
            else:
                raise _refused(400, f"{key}: not a field of a person")
        return out

    def _custom_fields(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _refused(400, "custom_fields: must be an object")
        for key, field_value in value.items():
            kind = self.person_fields.get(key)
            if kind is None:
                raise _refused(400, f"custom_fields.{key}: no such person field")
            if field_value is not None and not _typed(kind, field_value):
                raise _refused(400, f"custom_fields.{key}: not a valid {kind} value")
        return dict(value)

    # -- notes and activities ------------------------------------------------------------

    def add_note(self, body: dict[str, Any]) -> dict[str, Any]:
        content = body.get("content")
        if not isinstance(content, str) or not content.strip():
            raise _refused(400, "content: is required")
        targets = [t for t in NOTE_TARGETS if body.get(t) is not None]
        if not targets:
            raise _refused(400, "one of person_id, org_id, deal_id, lead_id, project_id is "
                                "required")
        self._person(body.get("person_id"))
        note = {"id": len(self.notes) + 1, **body}
        note.setdefault("add_time", time.strftime("%Y-%m-%d %H:%M:%S",
                                                  time.gmtime(self.clock())))
        with self._lock:
            self.notes.append(note)
        return note

    def add_activity(self, body: dict[str, Any]) -> dict[str, Any]:
        subject = body.get("subject")
        if not isinstance(subject, str) or not subject.strip():
            raise _refused(400, "subject: is required")
        if body.get("type") is not None and body["type"] not in self.activity_types:
            raise _refused(400, f"type: no activity type {body['type']!r}")
        if body.get("due_date") is not None and not _is_date(body["due_date"]):
            raise _refused(400, "due_date: YYYY-MM-DD")
        if body.get("due_time") is not None and not _TIME.match(str(body["due_time"])):
            raise _refused(400, "due_time: HH:MM")
        if "done" in body and not isinstance(body["done"], bool):
            raise _refused(400, "done: true or false")
        self._person(body.get("person_id"))
        activity = {"id": len(self.activities) + 1, **body}
        with self._lock:
            self.activities.append(activity)
        return activity

    def list_notes(self, query: dict[str, str]) -> dict[str, Any]:
        """A person's notes (v1): filtered by person and day, sorted, one page."""
        start, limit = _int_param(query, "start", 0, None), _int_param(query, "limit", 100, 500)
        sort = query.get("sort", "id ASC")
        if sort not in ("id ASC", "add_time ASC", "add_time DESC"):
            raise _refused(400, "sort: this fake sorts by id or add_time")
        day_from, day_to = query.get("start_date"), query.get("end_date")
        with self._lock:
            found = [copy.deepcopy(n) for n in self.notes
                     if query.get("person_id") in (None, str(n.get("person_id")))
                     and (day_from is None or str(n["add_time"])[:10] >= day_from)
                     and (day_to is None or str(n["add_time"])[:10] <= day_to)]
        key = "id" if sort.startswith("id") else "add_time"
        found.sort(key=lambda n: (n[key], n["id"]), reverse=sort.endswith("DESC"))
        page = found[start:start + limit]
        return {"success": True, "data": page or None, "additional_data": {"pagination": {
            "start": start, "limit": limit,
            "more_items_in_collection": start + limit < len(found)}}}

    def list_activities(self, query: dict[str, str]) -> dict[str, Any]:
        """A person's activities (v2): filtered by person, sorted, one page."""
        limit = _int_param(query, "limit", 100, 500)
        sort_by = query.get("sort_by", "id")
        if sort_by not in ("id", "add_time"):
            raise _refused(400, "sort_by: this fake sorts by id or add_time")
        with self._lock:
            found = [copy.deepcopy(a) for a in self.activities
                     if query.get("person_id") in (None, str(a.get("person_id")))]
        # Activities are added in time order: their id orders them by add_time too.
        found.sort(key=lambda a: a["id"], reverse=query.get("sort_direction") == "desc")
        return {"success": True, "data": found[:limit],
                "additional_data": {"next_cursor": None}}

    def _person(self, pid: Any) -> None:
        if pid is None:
            return
        with self._lock:
            if pid not in self.persons:
                raise _refused(400, f"person_id: person {pid} not found")


def _int_param(query: dict[str, str], name: str, default: int, most: int | None) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or (most is not None and not 1 <= int(raw) <= most):
        raise _refused(400, f"{name}: a whole number" + (f" from 1 to {most}" if most else ""))
    return int(raw)


def _contacts(key: str, value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(
            isinstance(v, dict) and isinstance(v.get("value"), str) and v["value"]
            for v in value):
        raise _refused(400, f"{key}: a list of {{value, primary, label}}")
    if any(not isinstance(v.get("primary", False), bool) for v in value):
        raise _refused(400, f"{key}: primary is true or false")
    return [dict(v) for v in value]


def _typed(kind: str, value: Any) -> bool:
    if kind == "double":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "monetary":
        return (isinstance(value, dict) and isinstance(value.get("value"), int | float)
                and not isinstance(value.get("value"), bool)
                and isinstance(value.get("currency"), str) and len(value["currency"]) == 3)
    if kind == "date":
        return _is_date(value)
    return isinstance(value, str)


def _is_date(value: Any) -> bool:
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _searchable(person: dict[str, Any], fields: list[str]) -> list[str]:
    values: list[str] = []
    if "name" in fields:
        values.append(person["name"])
    if "email" in fields:
        values += [e["value"] for e in person["emails"]]
    if "phone" in fields:
        values += [p["value"] for p in person["phones"]]
    if "custom_fields" in fields:
        values += [v for v in person["custom_fields"].values() if isinstance(v, str)]
    return values


def _matches(value: str, term: str, exact: bool) -> bool:
    return value.lower() == term.lower() if exact else term.lower() in value.lower()


def _search_item(person: dict[str, Any]) -> dict[str, Any]:
    return {"id": person["id"], "type": "person", "name": person["name"],
            "phones": [p["value"] for p in person["phones"]],
            "emails": [e["value"] for e in person["emails"]],
            "visible_to": person.get("visible_to", 3),
            "owner": {"id": person.get("owner_id", 1)}, "organization": None,
            "custom_fields": [v for v in person["custom_fields"].values()
                              if isinstance(v, str)], "notes": []}


def _now_rfc3339(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def _public(person: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in person.items() if not k.startswith("_")}


def make_app(fake: PipedriveFake | None = None) -> web.Application:
    """The Pipedrive fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or PipedriveFake()
    app = fake_app(FAKE_KEY, fake)

    async def handle(request: web.Request) -> web.Response:
        await fake.delay()
        raw = await request.read()
        if not fake.base:
            fake.base = f"{request.scheme}://{request.host}"
        if request.path == OAUTH_TOKEN_PATH:
            return _oauth(fake, request, raw)
        body = body_json(raw)
        entry: dict[str, Any] = {
            "method": request.method, "path": request.path, "query": dict(request.query),
            "body": body, "headers": {k.lower(): v for k, v in request.headers.items()},
        }
        response = _answer(fake, request, body)
        entry["status"] = response.status
        fake.record(entry)
        return response

    app.router.add_post(OAUTH_TOKEN_PATH, handle)
    # The search route first: /persons/search is not a person id.
    app.router.add_get(SEARCH_PATH, handle)
    app.router.add_post(PERSONS_PATH, handle)
    app.router.add_patch(PERSON_PATH, handle)
    app.router.add_post(ACTIVITIES_PATH, handle)
    app.router.add_post(NOTES_PATH, handle)
    app.router.add_get(ACTIVITIES_PATH, handle)
    app.router.add_get(NOTES_PATH, handle)
    return app


def _oauth(fake: PipedriveFake, request: web.Request, raw: bytes) -> web.Response:
    form = {k: v[0] for k, v in parse_qs(raw.decode(errors="replace")).items()}
    # Neither the app's secret (in the Basic header) nor the refresh token is recorded.
    entry: dict[str, Any] = {"method": request.method, "path": request.path,
                             "body": {k: v for k, v in form.items()
                                      if k not in ("refresh_token", "client_secret")}}
    try:
        if request.content_type != "application/x-www-form-urlencoded":
            raise _oauth_refused(400, "invalid_request", "the body must be a form")
        response = web.json_response(fake.oauth_token(request.headers.get("Authorization"),
                                                      form))
    except Refused as refused:
        response = refused.response()
    entry["status"] = response.status
    fake.record(entry)
    return response


def _answer(fake: PipedriveFake, request: web.Request, body: Any) -> web.Response:
    headers: dict[str, str] = {}
    try:
        token = fake.check_auth(request)
        search = request.path == SEARCH_PATH
        cost = COST_SEARCH if search else COST_GET if request.method == "GET" else COST_WRITE
        headers = fake.take(token, search, cost)
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return web.Response(status=reply.status, text=reply.body,
                                headers={**headers, **reply.headers})
        if search:
            return web.json_response(fake.search(dict(request.query)), headers=headers)
        if request.method == "GET":
            listed = (fake.list_notes if request.path == NOTES_PATH
                      else fake.list_activities)(dict(request.query))
            return web.json_response(listed, headers=headers)
        if not isinstance(body, dict):
            raise _refused(400, "the body must be a JSON object")
        if request.path == PERSONS_PATH:
            data = _public(fake.add_person(body))
        elif request.path in (ACTIVITIES_PATH, NOTES_PATH):
            data = (fake.add_activity if request.path == ACTIVITIES_PATH
                    else fake.add_note)(body)
            if fake.take_lost_answer():
                return web.json_response({"success": False, "error": "Gateway Timeout"},
                                         status=504, headers=headers)
        else:
            try:
                pid = int(request.match_info["id"])
            except ValueError:
                raise _refused(400, "id: must be an integer") from None
            data = _public(fake.update_person(pid, body))
        return web.json_response({"success": True, "data": data}, headers=headers)
    except Refused as refused:
        return refused.response(headers)


DEMO_TOKEN = "demo-pipedrive-token"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Pipedrive destination (the register_demo_destinations hook)."""
    fake = PipedriveFake(api_token=DEMO_TOKEN)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        assert isinstance(body, dict)
        what = entry["query"].get("term") or body.get("name") or body.get("subject") or (
            "note" if "content" in body else "")
        return f"{entry['method']} {entry['path'].removeprefix('/api')} {what} -> " \
               f"{entry['status']}"

    def state() -> list[str]:
        persons = server.call(lambda: copy.deepcopy(fake.persons))
        counts = server.call(lambda: (len(fake.notes), len(fake.activities)))
        return [f"{len(persons)} persons: {', '.join(p['name'] for p in persons.values())}; "
                f"{counts[0]} notes, {counts[1]} activities"]

    return DemoDestination(
        "pipedrive",
        {"plugin": "pipedrive",
         "settings": {"base_url": server.url, "api_token": DEMO_TOKEN},
         # Persons are people the CRM knows: anonymous visitors are skipped by the rule.
         "rules": {"only_identified": True},
         "mapping": {"options": {"custom_fields": {"lifetime_value": {
             "key": "b" * 40, "type": "number"}}}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Pipedrive contract fake.", 8091)
    parser.add_argument("--api-token", default=DEFAULT_TOKEN)
    parser.add_argument("--daily-budget", type=int, default=BASE_DAILY_BUDGET)
    args = parser.parse_args(argv)
    fake = PipedriveFake(api_token=args.api_token, daily_budget=args.daily_budget,
                         latency=args.latency)
    run_fake(make_app(fake), args, f"Pipedrive fake on {{url}} (token {args.api_token}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()

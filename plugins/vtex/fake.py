"""Contract fake of VTEX Master Data's documents API: a real HTTP server that refuses what
Master Data refuses.

    PATCH /api/dataentities/{entity}/documents    create or update partial document
                                                  -> 201 (created) / 200 (updated) /
                                                     304 (nothing changed)

The contract it enforces (sources on docs/destinations/vtex.md):
- the API key in two headers, X-VTEX-API-AppKey and X-VTEX-API-AppToken: either missing or
  wrong -> 401; a key whose role lacks "Insert or update document" -> 403 {"Message":
  "Unauthorized"};
- a JSON object body (Content-Type application/json) -> else 400;
- the data entity must exist -> else 404; every field must be one of the entity's fields, of
  its type (Email, Boolean, Date, Varchar of at most 300 characters for CL's text fields, ...)
  -> else 400 {"Message": ...};
- the document is matched by `id`, else by a field with a unique index (email on CL, read
  without case), and only the fields sent are changed; none matched: a new document with an
  id VTEX makes -> 201 {"Id": "CL-<uuid>", "Href": ..., "DocumentId": "<uuid>"}; matched and
  changed -> 200 with the same body; matched and unchanged -> 304 without a body;
- requests per second per account (none unless set) -> 429 with Retry-After.
Where VTEX's documents are silent (unknown entity, unknown field) the fake takes the stricter
reading. Scripted replies (`fake.script([500])`) answer first.

    python -m crossdock.plugins.vtex.fake --port 8093 --app-key demo-key --app-token demo-token
"""

from __future__ import annotations

import copy
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from aiohttp import web

from crossdock.plugins.vtex.const import DOCUMENTS_PATH, MAX_FIELD_LENGTH
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakelimits import FixedWindow
from crossdock.testing.fakescript import FakeState, Refused, fake_app, json_handler
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[VtexFake] = web.AppKey("vtex_fake")
DEFAULT_APP_KEY = "vtexappkey-teststore-ABCDEF"
DEFAULT_APP_TOKEN = "vtex-test-token"
ACCOUNT = "teststore"

#: the CL entity's fields a store has (createUpdateProfileRequests of the Master Data API),
#: by Master Data field type
CL_FIELDS = {
    "email": "Email", "firstName": "Varchar300", "lastName": "Varchar300",
    "phone": "Varchar300", "documentType": "Varchar300", "document": "Varchar300",
    "isCorporate": "Boolean", "isNewsletterOptIn": "Boolean", "localeDefault": "Varchar300",
    "corporateDocument": "Varchar300", "homePhone": "Varchar300", "cellPhone": "Varchar300",
    "corporateName": "Varchar300", "tradeName": "Varchar300",
    "stateRegistration": "Varchar300", "isFreeStateRegistration": "Boolean",
    "priceTables": "Varchar50", "birthDate": "Date", "gender": "Varchar10",
    "userId": "Varchar300",
}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_VARCHAR = re.compile(r"^Varchar(\d+)$")


def _refused(status: int, message: str) -> Refused:
    """A request Master Data answers with an error status."""
    return Refused(status, {"Message": message})


class _Throttled(Exception):
    def __init__(self, retry_after: str) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


@dataclass
class Entity:
    """A data entity: its fields by type and the fields with a unique index."""

    fields: dict[str, str]
    unique: tuple[str, ...] = ()


def default_entities() -> dict[str, Entity]:
    return {"CL": Entity(dict(CL_FIELDS), unique=("email",))}


@dataclass
class VtexFake(FakeState):
    """What the Master Data fake knows (the API key, the entities) and holds (documents by
    entity and id, every request it answered)."""

    app_key: str = DEFAULT_APP_KEY
    app_token: str = DEFAULT_APP_TOKEN
    account: str = ACCOUNT
    #: False: the key's role lacks the "Insert or update document" resource (403)
    may_write: bool = True
    entities: dict[str, Entity] = field(default_factory=default_entities)
    #: requests per second for the account (None: no limit)
    rate_limit: int | None = None
    clock: Callable[[], float] = time.monotonic
    documents: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _window: FixedWindow | None = field(default=None, repr=False)
    _made: int = field(default=0, repr=False)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            self.documents.clear()
            self._window = None

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap["documents"] = copy.deepcopy(self.documents)
        return snap

    def statuses(self) -> list[int]:
        """The status of every answered request, in arrival order."""
        return [r["status"] for r in self.received]

    def document(self, entity: str, email: str) -> dict[str, Any]:
        """The entity's document whose email is `email` (KeyError if none)."""
        with self._lock:
            for doc in self.documents.get(entity, {}).values():
                if str(doc.get("email", "")).lower() == email.lower():
                    return copy.deepcopy(doc)
        raise KeyError(email)

    # -- the contract ------------------------------------------------------------------

    def check_auth(self, key: str | None, token: str | None) -> None:
        if not key or not token:
            raise _refused(401, "Unauthorized: X-VTEX-API-AppKey and X-VTEX-API-AppToken "
                                "are required")
        if key != self.app_key or token != self.app_token:
            raise _refused(401, "Unauthorized")
        if not self.may_write:
            raise _refused(403, "Unauthorized")

    def take(self) -> None:
        if self.rate_limit is None:
            return
        with self._lock:
            if self._window is None:
                self._window = FixedWindow(self.rate_limit, 1.0, self.clock)
            window = self._window
        taken = window.take(self.account)
        if not taken.allowed:
            raise _Throttled(taken.headers()["x-ratelimit-reset"])

    def upsert(self, entity_name: str, body: Any) -> tuple[int, dict[str, Any]]:
        """(201 created / 200 updated / 304 unchanged, the document)."""
        entity = self.entities.get(entity_name)
        if entity is None:
            raise _refused(404, f"Data entity '{entity_name}' not found")
        if not isinstance(body, dict):
            raise _refused(400, "The request body must be a JSON object")
        for name, value in body.items():
            if name == "id":
                continue
            kind = entity.fields.get(name)
            if kind is None:
                raise _refused(400, f"Field '{name}' not found in data entity '{entity_name}'")
            if value is not None and not _typed(kind, value):
                raise _refused(400, f"Field '{name}': the value is not a valid {kind}")
        with self._lock:
            docs = self.documents.setdefault(entity_name, {})
            found = self._match(docs, entity, body)
            if found is None:
                # Ids VTEX makes are UUIDs; made from a count here so cassettes are stable.
                doc_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{entity_name}/{self._made}"))
                self._made += 1
                docs[doc_id] = {"id": doc_id, **{k: v for k, v in body.items() if k != "id"}}
                return 201, docs[doc_id]
            changed = {**found, **{k: v for k, v in body.items() if k != "id"}}
            if changed == found:
                return 304, found
            found.update(changed)
            return 200, found

    @staticmethod
    def _match(docs: dict[str, dict[str, Any]], entity: Entity, body: dict[str, Any]
               ) -> dict[str, Any] | None:
        if body.get("id") is not None:
            return docs.get(str(body["id"]))
        for key in entity.unique:
            value = body.get(key)
            if value is None:
                continue
            for doc in docs.values():
                if str(doc.get(key, "")).lower() == str(value).lower():
                    return doc
        return None


def _typed(kind: str, value: Any) -> bool:
    if kind == "Boolean":
        return isinstance(value, bool)
    if kind in ("Integer", "Long"):
        return isinstance(value, int) and not isinstance(value, bool)
    if kind in ("Decimal", "Currency", "Percent"):
        return isinstance(value, int | float) and not isinstance(value, bool)
    if not isinstance(value, str):
        return False
    if kind == "Email":
        return len(value) <= MAX_FIELD_LENGTH and bool(_EMAIL.match(value))
    if kind == "Date":
        try:
            date.fromisoformat(value[:10])
        except ValueError:
            return False
        return True
    if kind == "Date and Time":
        try:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True
    varchar = _VARCHAR.match(kind)
    if varchar:
        return len(value) <= int(varchar.group(1))
    return True  # Text and the others: any string


def make_app(fake: VtexFake | None = None) -> web.Application:
    """The Master Data fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or VtexFake()
    app = fake_app(FAKE_KEY, fake)

    documents = json_handler(fake, lambda request, body: _answer(fake, request, body))

    app.router.add_patch(DOCUMENTS_PATH.format(entity="{entity}"), documents)
    return app


def _answer(fake: VtexFake, request: web.Request, body: Any) -> web.Response:
    try:
        fake.check_auth(request.headers.get("X-VTEX-API-AppKey"),
                        request.headers.get("X-VTEX-API-AppToken"))
        fake.take()
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return reply.response()
        if not request.content_type.startswith("application/json"):
            raise _refused(400, "Content-Type must be application/json")
        entity = request.match_info["entity"]
        status, doc = fake.upsert(entity, body)
        if status == 304:
            return web.Response(status=304)
        # The Href names the account's host, as VTEX's answers do (never the fake's port).
        host = f"{fake.account}.vtexcommercestable.com.br"
        return web.json_response({
            "Id": f"{entity}-{doc['id']}",
            "Href": f"http://{host}/api/dataentities/{entity}/documents/{doc['id']}",
            "DocumentId": doc["id"]}, status=status)
    except _Throttled as throttled:
        return web.json_response({"Message": "Too Many Requests"}, status=429,
                                 headers={"Retry-After": throttled.retry_after})
    except Refused as refused:
        return refused.response()


DEMO_KEY, DEMO_TOKEN = "vtexappkey-demo-XYZ", "demo-vtex-token"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's VTEX destination (the register_demo_destinations hook)."""
    fake = VtexFake(app_key=DEMO_KEY, app_token=DEMO_TOKEN, account="demostore")
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        assert isinstance(body, dict)
        return f"PATCH {entry['path']} {body.get('email')} " \
               f"{', '.join(sorted(k for k in body if k != 'email'))} -> {entry['status']}"

    def state() -> list[str]:
        docs = server.call(lambda: copy.deepcopy(fake.documents.get("CL", {})))
        return [f"document {d.get('email')}: isNewsletterOptIn {d.get('isNewsletterOptIn')}"
                for d in sorted(docs.values(), key=lambda d: str(d.get("email")))]

    return DemoDestination(
        "vtex",
        {"plugin": "vtex",
         "settings": {"account_name": "demostore", "base_url": server.url,
                      "app_key": DEMO_KEY, "app_token": DEMO_TOKEN},
         # The demo's anonymous visitor has no email, the document's key: skipped by the
         # rule instead of dead-lettered.
         "rules": {"only_identified": True}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the VTEX Master Data contract fake.", 8093)
    parser.add_argument("--app-key", default=DEFAULT_APP_KEY)
    parser.add_argument("--app-token", default=DEFAULT_APP_TOKEN)
    args = parser.parse_args(argv)
    fake = VtexFake(app_key=args.app_key, app_token=args.app_token, latency=args.latency)
    run_fake(make_app(fake), args, f"VTEX Master Data fake on {{url}} (key {args.app_key}; "
                                   "GET /_fake/received)")


if __name__ == "__main__":
    main()

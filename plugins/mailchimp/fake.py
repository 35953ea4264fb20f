"""Contract fake of the Mailchimp Marketing API v3 (members, tags, events, batch subscribe).

- Auth: `Authorization: Basic base64(anyuser:key)` or `Bearer key`; anything else is 401
  "API Key Invalid".
- At most 10 requests in flight per key: the 11th is 429 "Too Many Requests" (latency makes
  overlaps happen on purpose).
- `PUT /3.0/lists/{list}/members/{hash}[?skip_merge_validation=true]`: the hash must be MD5
  of the lower-cased email; a valid email; status / status_if_new among Mailchimp's statuses
  (a new member needs one; `status` changes an existing member's, `status_if_new` only a new
  one's); merge fields known to the list with their types (BIRTHDAY "MM/DD", ADDRESS {addr1,
  city, state, zip}); a member without a value for a merge field the list requires
  (`required_merge_fields`) is 400 "Invalid Resource" unless `skip_merge_validation=true`;
  forgotten emails are 400 "Forgotten Email Not Subscribed", re-subscribing a member in
  `compliance` is 400 "Member In Compliance State".
- `POST .../members/{hash}/tags` {tags: [{name, status: active|inactive}]} -> 204.
- `POST .../members/{hash}/events` {name 2-30 of [A-Za-z0-9_-], properties {str: str},
  occurred_at} -> 204. A member that does not exist is 404 "Resource Not Found".
- `POST /3.0/lists/{list}[?skip_merge_validation=true]` {members: <= 500, each with a
  `status`, update_existing} -> 200 {new_members, updated_members, errors: [{email_address,
  error, error_code}], total_created, total_updated, error_count}; an existing member is an
  error (ERROR_CONTACT_EXISTS) unless update_existing, and the member rules above apply to
  each member (ERROR_GENERIC).
- Errors are application/problem+json {type, title, status, detail, instance}.
- `GET /_fake/state`: each list's members with status, merge fields, tags and events.

    python -m crossdock.plugins.mailchimp.fake --port 8096 --key fake-key-us1 --list abc123
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from crossdock.plugins.mailchimp.const import (
    ADDRESS_REQUIRED,
    EVENT_NAME,
    MAX_BATCH_MEMBERS,
    MAX_CONNECTIONS,
    MEMBER_STATUSES,
)
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import FakeState, Reply, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[MailchimpFake] = web.AppKey("mailchimp_fake")
DEFAULT_KEY = "0123456789abcdef0123456789abcdef-us1"
DEFAULT_LIST = "a1b2c3d4e5"
#: the merge fields a new Mailchimp audience has, with their types
DEFAULT_MERGE_FIELDS = {"FNAME": "text", "LNAME": "text", "PHONE": "phone",
                        "BIRTHDAY": "birthday", "ADDRESS": "address"}
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_BIRTHDAY = re.compile(r"^(0[1-9]|1[0-2])/(0[1-9]|[12]\d|3[01])$")
_HASH = re.compile(r"^[0-9a-f]{32}$")


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.title, self.detail = status, title, detail


def problem_body(status: int, title: str, detail: str) -> dict[str, Any]:
    slug = title.lower().replace(" ", "-")
    return {"type": f"https://mailchimp.com/developer/marketing/docs/errors/#{slug}",
            "title": title, "status": status, "detail": detail,
            "instance": str(uuid.uuid4())}


def invalid(detail: str) -> Problem:
    return Problem(400, "Invalid Resource", detail)


@dataclass
class Member:
    email: str
    status: str
    merge_fields: dict[str, Any] = field(default_factory=dict)
    tags: set[str] = field(default_factory=set)
    events: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"email_address": self.email, "status": self.status,
                "merge_fields": dict(self.merge_fields), "tags": sorted(self.tags),
                "events": list(self.events)}


@dataclass
class MailchimpFake(FakeState):
    """What the fake knows (keys, lists) and holds (members with tags and events)."""

    keys: set[str] = field(default_factory=lambda: {DEFAULT_KEY})
    lists: dict[str, dict[str, Member]] = field(default_factory=lambda: {DEFAULT_LIST: {}})
    merge_field_types: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_MERGE_FIELDS))
    #: merge fields the list marks required: a member must have a value unless the request
    #: says skip_merge_validation=true
    required_merge_fields: set[str] = field(default_factory=set)
    max_connections: int = MAX_CONNECTIONS
    #: emails whose member may not be re-subscribed through the API
    compliance: set[str] = field(default_factory=set)
    #: emails permanently deleted ("forgotten"): they cannot be added again by the API
    forgotten: set[str] = field(default_factory=set)
    in_flight: dict[str, int] = field(default_factory=dict)
    peak_in_flight: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def fail_with(self, status: int, title: str, detail: str = "scripted",
                  retry_after: str | None = None) -> None:
        """Answer the next request with this problem+json error."""
        headers = {"content-type": "application/problem+json"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        self.script([Reply(status, json.dumps(problem_body(status, title, detail)), headers)])

    def member(self, email: str, list_id: str = DEFAULT_LIST) -> Member | None:
        with self._lock:
            return self.lists.get(list_id, {}).get(_hash(email))

    def tagged(self, tag: str, list_id: str = DEFAULT_LIST) -> set[str]:
        """Emails of the members carrying `tag` (active)."""
        with self._lock:
            return {m.email.lower() for m in self.lists.get(list_id, {}).values()
                    if tag in m.tags}

    def reset(self) -> None:
        super().reset()
        with self._lock:
            for members in self.lists.values():
                members.clear()
            self.errors.clear()
            self.peak_in_flight = 0

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap["lists"] = {lid: {h: m.as_json() for h, m in sorted(members.items())}
                             for lid, members in self.lists.items()}
            snap["errors"] = dict(self.errors)
            snap["peak_in_flight"] = self.peak_in_flight
        return snap

    # -- the API ---------------------------------------------------------------------------

    def api_key(self, header: str) -> str:
        scheme, _, credential = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credential.strip()
        elif scheme.lower() == "basic":
            try:
                key = base64.b64decode(credential.strip()).decode().partition(":")[2]
            except ValueError:
                key = ""
        if not key or not any(hmac.compare_digest(key, k) for k in self.keys):
            raise Problem(401, "API Key Invalid", "Your API key may be invalid, or you've "
                          "attempted to access the wrong datacenter.")
        return key

    def members_of(self, list_id: str) -> dict[str, Member]:
        members = self.lists.get(list_id)
        if members is None:
            raise Problem(404, "Resource Not Found",
                          "The requested resource could not be found.")
        return members

    def check_merge_fields(self, merge_fields: Any) -> dict[str, Any]:
        if merge_fields is None:
            return {}
        if not isinstance(merge_fields, dict):
            raise invalid("merge_fields must be an object")
        for tag, value in merge_fields.items():
            kind = self.merge_field_types.get(tag)
            if kind is None:
                raise invalid(f"Your merge fields were invalid. {tag} is not a merge field "
                              "of this audience.")
            if kind == "birthday" and not (isinstance(value, str) and _BIRTHDAY.match(value)):
                raise invalid(f"Your merge fields were invalid. {tag} must be MM/DD.")
            if kind == "address" and not (isinstance(value, dict) and all(
                    isinstance(value.get(k), str) and value[k] for k in ADDRESS_REQUIRED)):
                raise invalid(f"Your merge fields were invalid. {tag} needs addr1, city, "
                              "state and zip.")
            if kind in ("text", "phone") and not isinstance(value, str):
                raise invalid(f"Your merge fields were invalid. {tag} must be a string.")
        return dict(merge_fields)

    def check_required(self, merge_fields: dict[str, Any]) -> None:
        missing = sorted(t for t in self.required_merge_fields
                         if merge_fields.get(t) in (None, ""))
        if missing:
            raise invalid("Your merge fields were invalid. "
                          + "; ".join(f"{t}: Please enter a value" for t in missing))

    def upsert(self, list_id: str, member_hash: str | None, body: Any,
               update_existing: bool = True, skip_merge_validation: bool = False
               ) -> tuple[bool, Member]:
        """Create or update a member; (created, member), or Problem."""
        members = self.members_of(list_id)
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        email = body.get("email_address")
        if not isinstance(email, str) or not _EMAIL.match(email.strip()):
            raise invalid(f"{email!r} looks fake or invalid, please enter a real email "
                          "address.")
        email = email.strip()
        if member_hash is not None and member_hash != _hash(email):
            raise invalid("The subscriber hash in the URL does not match email_address.")
        if email.lower() in self.forgotten:
            raise Problem(400, "Forgotten Email Not Subscribed",
                          f"{email} was permanently deleted and cannot be re-imported.")
        status, status_if_new = body.get("status"), body.get("status_if_new")
        for name, value in (("status", status), ("status_if_new", status_if_new)):
            if value is not None and value not in MEMBER_STATUSES:
                raise invalid(f"{name} must be one of {', '.join(sorted(MEMBER_STATUSES))}")
        merge_fields = self.check_merge_fields(body.get("merge_fields"))
        existing = members.get(_hash(email))
        if existing is None:
            first = status or status_if_new
            if first is None:
                raise invalid("status_if_new is required to add a new member.")
            if not skip_merge_validation:
                self.check_required(merge_fields)
            members[_hash(email)] = Member(email, first, merge_fields)
            return True, members[_hash(email)]
        if not update_existing:
            raise Problem(400, "Member Exists", f"{email} is already a list member.")
        if not skip_merge_validation:
            self.check_required({**existing.merge_fields, **merge_fields})
        if status is not None and status != existing.status:
            if status == "subscribed" and email.lower() in self.compliance:
                raise Problem(400, "Member In Compliance State",
                              f"{email} is already a list member in compliance state due to "
                              "unsubscribe, bounce, or compliance review.")
            existing.status = status
        existing.email = email
        existing.merge_fields.update(merge_fields)
        return False, existing

    def existing(self, list_id: str, member_hash: str) -> Member:
        member = self.members_of(list_id).get(member_hash)
        if member is None:
            raise Problem(404, "Resource Not Found",
                          "The requested resource could not be found.")
        return member

    def tag(self, list_id: str, member_hash: str, body: Any) -> None:
        member = self.existing(list_id, member_hash)
        tags = body.get("tags") if isinstance(body, dict) else None
        if not isinstance(tags, list) or not tags:
            raise invalid("tags must be a non-empty list of {name, status}")
        for i, tag in enumerate(tags):
            if not isinstance(tag, dict) or not isinstance(tag.get("name"), str) \
                    or not tag["name"].strip() or tag.get("status") not in ("active",
                                                                             "inactive"):
                raise invalid(f"tags[{i}] must be {{name, status: active|inactive}}")
        for tag in tags:
            if tag["status"] == "active":
                member.tags.add(tag["name"])
            else:
                member.tags.discard(tag["name"])

    def event(self, list_id: str, member_hash: str, body: Any) -> None:
        member = self.existing(list_id, member_hash)
        if not isinstance(body, dict):
            raise invalid("The request body must be a JSON object.")
        name = body.get("name")
        if not isinstance(name, str) or not EVENT_NAME.match(name):
            raise invalid("name: an event name is 2-30 letters, numbers, underscores or "
                          "dashes.")
        properties = body.get("properties") or {}
        if not isinstance(properties, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in properties.items()):
            raise invalid("properties: values must be strings.")
        occurred_at = body.get("occurred_at")
        if occurred_at is not None and not isinstance(occurred_at, str):
            raise invalid("occurred_at must be an ISO 8601 time.")
        member.events.append({"name": name, "properties": properties,
                              "occurred_at": occurred_at})

    def batch(self, list_id: str, body: Any, skip_merge_validation: bool = False
              ) -> dict[str, Any]:
        self.members_of(list_id)
        members = body.get("members") if isinstance(body, dict) else None
        if not isinstance(members, list):
            raise invalid("members must be a list")
        if len(members) > MAX_BATCH_MEMBERS:
            raise invalid(f"members: at most {MAX_BATCH_MEMBERS} per call, got {len(members)}")
        update = bool(body.get("update_existing", False))
        created: list[dict[str, Any]] = []
        updated: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for raw in members:
            try:
                if not isinstance(raw, dict) or raw.get("status") is None:
                    raise invalid("status is required for every member")
                new, member = self.upsert(list_id, None, raw, update_existing=update,
                                          skip_merge_validation=skip_merge_validation)
            except Problem as exc:
                email = raw.get("email_address") if isinstance(raw, dict) else None
                code = "ERROR_CONTACT_EXISTS" if exc.title == "Member Exists" else \
                    "ERROR_GENERIC"
                errors.append({"email_address": email, "error": exc.detail, "error_code": code})
                continue
            (created if new else updated).append(
                {"id": _hash(member.email), "email_address": member.email,
                 "status": member.status})
        return {"new_members": created, "updated_members": updated, "errors": errors,
                "total_created": len(created), "total_updated": len(updated),
                "error_count": len(errors)}


def _hash(email: str) -> str:
    return hashlib.md5(email.strip().lower().encode()).hexdigest()


def make_app(fake: MailchimpFake | None = None) -> web.Application:
    """Mailchimp's API under /3.0 as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or MailchimpFake()
    app = fake_app(FAKE_KEY, fake, client_max_size=16 * 1024 * 1024)

    def refuse(exc: Problem) -> web.Response:
        with fake._lock:
            fake.errors[exc.title] = fake.errors.get(exc.title, 0) + 1
        return web.json_response(problem_body(exc.status, exc.title, exc.detail),
                                 status=exc.status, content_type="application/problem+json")

    async def handle(request: web.Request) -> web.StreamResponse:
        try:
            key = fake.api_key(request.headers.get("Authorization", ""))
        except Problem as exc:
            return refuse(exc)
        with fake._lock:
            if fake.in_flight.get(key, 0) >= fake.max_connections:
                busy = True
            else:
                busy = False
                fake.in_flight[key] = fake.in_flight.get(key, 0) + 1
                fake.peak_in_flight = max(fake.peak_in_flight, fake.in_flight[key])
        if busy:
            return refuse(Problem(429, "Too Many Requests", "You have exceeded the limit of "
                                  f"{fake.max_connections} simultaneous connections."))
        try:
            await fake.delay()
            return await dispatch(request)
        except Problem as exc:
            return refuse(exc)
        finally:
            with fake._lock:
                fake.in_flight[key] -= 1

    async def dispatch(request: web.Request) -> web.StreamResponse:
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return reply.response()
        try:
            body = json.loads(await request.read() or b"null")
        except ValueError:
            raise Problem(400, "JSON Parse Error", "We encountered an unspecified JSON "
                          "parsing error.") from None
        info = request.match_info
        list_id, member_hash, action = info["list_id"], info.get("hash"), info.get("action")
        if member_hash is not None and not _HASH.match(member_hash):
            raise Problem(404, "Resource Not Found", "The requested resource could not be "
                          "found.")
        # Mailchimp's query flags are booleans written "true" / "false".
        skip = request.query.get("skip_merge_validation", "false").lower() == "true"
        with fake._lock:
            if member_hash is None:
                result: dict[str, Any] | None = fake.batch(list_id, body, skip)
            elif action is None:
                _, member = fake.upsert(list_id, member_hash, body, skip_merge_validation=skip)
                result = {"id": member_hash, **member.as_json()}
            elif action == "tags":
                fake.tag(list_id, member_hash, body)
                result = None
            else:
                fake.event(list_id, member_hash, body)
                result = None
        fake.record({"method": request.method, "path": request.path,
                     "query": dict(request.query), "body": body})
        return web.json_response(result) if result is not None else web.Response(status=204)

    app.router.add_post("/3.0/lists/{list_id}", handle)
    app.router.add_put("/3.0/lists/{list_id}/members/{hash}", handle)
    app.router.add_post("/3.0/lists/{list_id}/members/{hash}/{action:tags|events}", handle)
    return app


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Mailchimp audience: identifies upsert members, and the demo audience's
    changes become tags."""
    fake = MailchimpFake()
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body")
        body = body if isinstance(body, dict) else {}
        path = str(entry.get("path", ""))
        if path.endswith(("/tags", "/events")):
            member = fake.lists.get(DEFAULT_LIST, {}).get(path.split("/")[-2])
            who = member.email if member is not None else path.split("/")[-2]
            if path.endswith("/events"):
                return f"POST event {body.get('name')} of {who}"
            tags = ", ".join(f"{'+' if t.get('status') == 'active' else '-'}{t.get('name')}"
                             for t in body.get("tags") or [] if isinstance(t, dict))
            return f"POST tags {tags} of {who}"
        if "/members/" in path:
            merge = " ".join(f"{k}={v}" for k, v in sorted((body.get("merge_fields")
                                                              or {}).items()))
            return f"PUT member {body.get('email_address')} {merge}".rstrip()
        return f"POST batch subscribe of {len(body.get('members') or [])} members"

    def state() -> list[str]:
        snapshot = server.call(fake.snapshot)
        members = snapshot["lists"][DEFAULT_LIST].values()
        tags = sorted({t for m in members for t in m["tags"]})
        lines = [f"list {DEFAULT_LIST} now has {len(members)} members"]
        lines += [f"tag {tag}: " + ", ".join(sorted(m["email_address"] for m in members
                                                    if tag in m["tags"])) for tag in tags]
        return lines

    return DemoDestination(
        "mailchimp-main",
        {"plugin": "mailchimp",
         "settings": {"api_key": DEFAULT_KEY, "list_id": DEFAULT_LIST,
                      "base_url": f"{server.url}/3.0"},
         # Only membership events become tags; identifies pass (the filter names events).
         "filter": {"events": {"allow": ["audience_entered", "audience_exited"]}},
         # One batch at a time keeps a person's enter and leave in order (mailchimp.md).
         "delivery": {"concurrency": 1}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        audience=True,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Mailchimp Marketing API contract fake.", 8096)
    parser.add_argument("--key", action="append", help=f"an API key (default {DEFAULT_KEY})")
    parser.add_argument("--list", action="append", help=f"a list id (default {DEFAULT_LIST})")
    args = parser.parse_args(argv)
    fake = MailchimpFake(latency=args.latency, keys=set(args.key or [DEFAULT_KEY]),
                         lists={lid: {} for lid in args.list or [DEFAULT_LIST]})
    run_fake(make_app(fake), args, "mailchimp fake on {url}/3.0 (lists "
             f"{', '.join(sorted(fake.lists))}; GET /_fake/state)")


if __name__ == "__main__":
    main()

"""Contract fake of the Google Ads API and Google's OAuth2 token endpoint on one server,
refusing what they refuse.

    POST /token                                                      refresh token grant
    POST /{v}/customers/{cid}/offlineUserDataJobs:create             a Customer Match job
    POST /{v}/customers/{cid}/offlineUserDataJobs/{id}:addOperations its operations
    POST /{v}/customers/{cid}/offlineUserDataJobs/{id}:run           run it (applied at once)
    POST /{v}/customers/{cid}:uploadClickConversions                 click conversions

The contract it enforces (sources on docs/destinations/google_ads.md):
- the token route takes a form: grant_type refresh_token, the refresh token, client_id and
  client_secret (else 400 invalid_request / unsupported_grant_type / invalid_grant, 401
  invalid_client); it answers access_token, token_type Bearer, expires_in 3599;
- API calls carry `Authorization: Bearer <live token>` (else 401 UNAUTHENTICATED), the
  `developer-token` header (else 400 requestError.DEVELOPER_TOKEN_PARAMETER_MISSING; a wrong
  one 401 authenticationError.DEVELOPER_TOKEN_INVALID), and, for an account reached through
  a manager, `login-customer-id` naming it (else 403
  authorizationError.USER_PERMISSION_DENIED); another customer id -> 403 the same;
- a job is CUSTOMER_MATCH_USER_LIST on a user list it holds; operations go only to a job of
  this customer that has not run, at most 100,000 a call, each a create or a remove of 1 to 20
  user identifiers, each identifier one of hashedEmail, hashedPhoneNumber, addressInfo (all
  of hashedFirstName, hashedLastName, countryCode, postalCode), hashes 64 lower-case hex
  -> else 400 offlineUserDataJobError (INVALID_SHA256_FORMAT, TOO_MANY_USER_IDENTIFIERS, ...);
  with enablePartialFailure the valid operations are taken and the others named in
  partialFailureError; a job runs once (400 offlineUserDataJobError.INVALID_JOB_STATUS after);
- uploadClickConversions takes partialFailure true (else 400), at most 2000 conversions, each
  with a gclid, a conversion action it holds, conversionDateTime "yyyy-mm-dd hh:mm:ss+|-hh:mm"
  and an ISO 4217 currencyCode when given; a gclid it does not know is refused in
  partialFailureError (conversionUploadError.UNPARSEABLE_GCLID), the row named by index;
- requests per second beyond `rate_limit` (none unless set) -> 429 RESOURCE_EXHAUSTED.
Scripted replies (`fake.script([500])`) answer the API routes; `token_script` the token route.

    python -m crossdock.plugins.google_ads.fake --port 8095
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from crossdock.plugins.google_ads.const import MAX_CONVERSIONS, MAX_IDENTIFIERS, MAX_OPERATIONS
from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import Refused, body_json, fake_app
from crossdock.testing.fakeserver import fake_arguments, run_fake
from crossdock.testing.faketokens import OAuthFakeState

FAKE_KEY: web.AppKey[GoogleAdsFake] = web.AppKey("google_ads_fake")
TOKEN_PATH = "/token"
DEFAULT_CUSTOMER = "1234567890"
DEFAULT_MANAGER = "9876543210"
DEFAULT_DEVELOPER_TOKEN = "dev-token-value"
DEFAULT_CLIENT_ID = "client-id.apps.googleusercontent.com"
DEFAULT_CLIENT_SECRET = "google-client-secret"
DEFAULT_REFRESH_TOKEN = "1//google-refresh-token"
DEFAULT_USER_LIST = "555"
DEFAULT_CONVERSION_ACTION = "777"
#: what expires_in says: Google's access tokens live an hour
TOKEN_LIFETIME = 3599
_HASH = re.compile(r"^[0-9a-f]{64}$")
_TIME = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$")
_ROUTE = re.compile(r"^/(?P<v>v\d+)/customers/(?P<cid>\d+)(?::(?P<call>uploadClickConversions)"
                    r"|/offlineUserDataJobs(?::(?P<create>create)|/(?P<job>\d+):"
                    r"(?P<action>addOperations|run)))$")
ADDRESS_FIELDS = ("hashedFirstName", "hashedLastName", "countryCode", "postalCode")


_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
           404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED"}


def failure(errors: list[tuple[str, str, str, list[dict[str, Any]]]]) -> dict[str, Any]:
    """A GoogleAdsFailure detail: (category, code, message, field path) per error."""
    return {"@type": "type.googleapis.com/google.ads.googleads.v26.errors.GoogleAdsFailure",
            "errors": [{"errorCode": {category: code}, "message": message,
                        **({"location": {"fieldPathElements": path}} if path else {})}
                       for category, code, message, path in errors]}


def refused(status: int, category: str, code: str, message: str,
            path: list[dict[str, Any]] | None = None) -> Refused:
    return Refused(status, {"error": {
        "code": status, "message": "Request contains an invalid argument." if status == 400
        else message, "status": _STATUS[status],
        "details": [failure([(category, code, message, path or [])])]}})


def _oauth_error(status: int, error: str, description: str) -> Refused:
    return Refused(status, {"error": error, "error_description": description})


@dataclass
class Job:
    user_list: str
    operations: list[dict[str, Any]] = field(default_factory=list)
    status: str = "PENDING"


@dataclass
class GoogleAdsFake(OAuthFakeState):
    """What the fake account knows (its OAuth client, developer token, manager, user lists,
    conversion actions, the clicks it served) and holds (tokens, jobs, list members,
    conversions, every request it answered)."""

    customer_id: str = DEFAULT_CUSTOMER
    manager_id: str | None = DEFAULT_MANAGER
    developer_token: str = DEFAULT_DEVELOPER_TOKEN
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    refresh_token: str = DEFAULT_REFRESH_TOKEN
    lifetime: int = TOKEN_LIFETIME
    rate_limit: int | None = None
    #: user list id -> the members' identifiers (each identifier as a sorted JSON-ish tuple)
    user_lists: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: {DEFAULT_USER_LIST: []})
    conversion_actions: set[str] = field(default_factory=lambda: {DEFAULT_CONVERSION_ACTION})
    #: gclids it knows (None: any gclid not starting with "unknown")
    gclids: set[str] | None = None
    jobs: dict[str, Job] = field(default_factory=dict)
    conversions: list[dict[str, Any]] = field(default_factory=list)

    def reset(self) -> None:
        super().reset()
        with self._lock:
            for members in self.user_lists.values():
                members.clear()
            self.jobs.clear()
            self.conversions.clear()

    def snapshot(self) -> dict[str, Any]:
        snap = super().snapshot()
        with self._lock:
            snap.update(user_lists=copy.deepcopy(self.user_lists),
                        conversions=list(self.conversions))
        return snap

    def members(self, user_list: str = DEFAULT_USER_LIST) -> list[dict[str, Any]]:
        with self._lock:
            return copy.deepcopy(self.user_lists[user_list])

    # -- the token route ---------------------------------------------------------------

    def token(self, request: web.Request, raw: bytes) -> dict[str, Any]:
        scripted = self.token_asked()
        if scripted is not None:
            raise _oauth_error(scripted, "temporarily_unavailable", "scripted")
        if request.content_type != "application/x-www-form-urlencoded":
            raise _oauth_error(400, "invalid_request", "the body must be a form")
        form = {k: v[-1] for k, v in parse_qs(raw.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != "refresh_token":
            raise _oauth_error(400, "unsupported_grant_type", "Invalid grant_type")
        if (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                   self.client_secret):
            raise _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if form.get("refresh_token") != self.refresh_token:
            raise _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
        return {"access_token": self.tokens.issue(self.lifetime, prefix="ya29."),
                "expires_in": self.lifetime, "token_type": "Bearer",
                "scope": "https://www.googleapis.com/auth/adwords"}

    # -- the API -----------------------------------------------------------------------

    def check(self, request: web.Request, cid: str) -> int:
        auth = request.headers.get("Authorization", "")
        number = self.tokens.number(auth.removeprefix("Bearer ")) if auth.startswith(
            "Bearer ") else None
        if number is None:
            raise Refused(401, {"error": {
                "code": 401, "status": "UNAUTHENTICATED",
                "message": "Request had invalid authentication credentials. Expected OAuth 2 "
                           "access token, login cookie or other valid authentication "
                           "credential."}})
        developer = request.headers.get("developer-token")
        if developer is None:
            raise refused(400, "requestError", "DEVELOPER_TOKEN_PARAMETER_MISSING",
                          "The developer-token parameter is required for all requests.")
        if developer != self.developer_token:
            raise refused(401, "authenticationError", "DEVELOPER_TOKEN_INVALID",
                          "The developer token is not valid.")
        login = request.headers.get("login-customer-id")
        if cid != self.customer_id or (self.manager_id is not None
                                       and login != self.manager_id):
            raise refused(403, "authorizationError", "USER_PERMISSION_DENIED",
                          "User doesn't have permission to access customer. Note: If you're "
                          "accessing a client customer, the manager's customer id must be "
                          "set in the 'login-customer-id' header.")
        if (self.rate_limit is not None
                and not self.window("api", self.rate_limit, 1.0).take("api").allowed):
            error = refused(429, "quotaError", "RESOURCE_TEMPORARILY_EXHAUSTED",
                            "Too many requests. Retry in 1 seconds.")
            error.headers["Retry-After"] = "1"
            raise error
        return number

    def create(self, cid: str, body: Any) -> dict[str, Any]:
        job = body.get("job") if isinstance(body, dict) else None
        if not isinstance(job, dict) or job.get("type") != "CUSTOMER_MATCH_USER_LIST":
            raise refused(400, "offlineUserDataJobError", "INVALID_JOB_TYPE",
                          "job.type must be CUSTOMER_MATCH_USER_LIST for a user list job.")
        user_list = str((job.get("customerMatchUserListMetadata") or {}).get("userList", ""))
        prefix = f"customers/{cid}/userLists/"
        ident = user_list.removeprefix(prefix)
        if not user_list.startswith(prefix) or ident not in self.user_lists:
            raise refused(400, "offlineUserDataJobError", "INVALID_USER_LIST_ID",
                          "The user list ID provided for the job is invalid.")
        with self._lock:
            number = str(len(self.jobs) + 1001)
            self.jobs[number] = Job(ident)
        return {"resourceName": f"customers/{cid}/offlineUserDataJobs/{number}"}

    def add(self, cid: str, number: str, body: Any) -> dict[str, Any]:
        job = self.jobs.get(number)
        if job is None:
            raise refused(404, "mutateError", "RESOURCE_NOT_FOUND",
                          f"customers/{cid}/offlineUserDataJobs/{number} was not found.")
        if job.status != "PENDING":
            raise refused(400, "offlineUserDataJobError", "INVALID_JOB_STATUS",
                          "Operations can only be added to a job that has not run.")
        operations = body.get("operations") if isinstance(body, dict) else None
        if not isinstance(operations, list) or not operations:
            raise refused(400, "fieldError", "REQUIRED", "operations are required.")
        if len(operations) > MAX_OPERATIONS:
            raise refused(400, "offlineUserDataJobError", "TOO_MANY_USER_IDENTIFIERS",
                          "Maximum number of user identifiers allowed per request is "
                          "100,000 and per operation is 20.")
        problems = [(i, p) for i, op in enumerate(operations)
                    if (p := _operation_problem(op)) is not None]
        if problems and not body.get("enablePartialFailure"):
            i, (code, message) = problems[0]
            raise refused(400, "offlineUserDataJobError", code, message,
                          [{"fieldName": "operations", "index": i}])
        bad = {i for i, _ in problems}
        with self._lock:
            job.operations.extend(op for i, op in enumerate(operations) if i not in bad)
        if not problems:
            return {}
        return {"partialFailureError": {
            "code": 3, "message": f"{len(problems)} operations failed",
            "details": [failure([("offlineUserDataJobError", code, message,
                                  [{"fieldName": "operations", "index": i}])
                                 for i, (code, message) in problems])]}}

    def run(self, cid: str, number: str) -> dict[str, Any]:
        job = self.jobs.get(number)
        if job is None:
            raise refused(404, "mutateError", "RESOURCE_NOT_FOUND",
                          f"customers/{cid}/offlineUserDataJobs/{number} was not found.")
        if job.status != "PENDING":
            raise refused(400, "offlineUserDataJobError", "INVALID_JOB_STATUS",
                          "The job has already run.")
        with self._lock:
            job.status = "SUCCESS"  # processed at once: the fake has no queue
            members = self.user_lists[job.user_list]
            for op in job.operations:
                for identifier in next(iter(op.values()))["userIdentifiers"]:
                    if "create" in op and identifier not in members:
                        members.append(identifier)
                    elif "remove" in op and identifier in members:
                        members.remove(identifier)
        return {"name": f"customers/{cid}/operations/{number}"}

    def upload(self, cid: str, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or body.get("partialFailure") is not True:
            raise refused(400, "fieldError", "REQUIRED",
                          "partial_failure is required and must be true.")
        conversions = body.get("conversions")
        if not isinstance(conversions, list) or not conversions:
            raise refused(400, "fieldError", "REQUIRED", "conversions are required.")
        if len(conversions) > MAX_CONVERSIONS:
            raise refused(400, "requestError", "TOO_MANY_OPERATIONS",
                          f"At most {MAX_CONVERSIONS} conversions per request.")
        results: list[dict[str, Any]] = []
        errors = []
        for i, conversion in enumerate(conversions):
            problem = self._conversion_problem(cid, conversion)
            if problem is None:
                with self._lock:
                    self.conversions.append(conversion)
                results.append({"gclid": conversion["gclid"],
                                "conversionAction": conversion["conversionAction"],
                                "conversionDateTime": conversion["conversionDateTime"]})
            else:
                category, code, message = problem
                errors.append((category, code, message,
                               [{"fieldName": "conversions", "index": i}]))
                results.append({})
        answer: dict[str, Any] = {"results": results}
        if errors:
            answer["partialFailureError"] = {
                "code": 3, "message": f"{len(errors)} conversions failed",
                "details": [failure(errors)]}
        return answer

    def _conversion_problem(self, cid: str, c: Any) -> tuple[str, str, str] | None:
        if not isinstance(c, dict):
            return ("fieldError", "REQUIRED", "a conversion is an object")
        if not c.get("gclid"):
            return ("conversionUploadError", "UNPARSEABLE_GCLID", "The gclid is missing.")
        action = str(c.get("conversionAction", ""))
        if action.removeprefix(f"customers/{cid}/conversionActions/") not in (
                self.conversion_actions) or not action.startswith(f"customers/{cid}/"):
            return ("conversionUploadError", "INVALID_CONVERSION_ACTION",
                    "The conversion action specified in the upload request cannot be found.")
        when = str(c.get("conversionDateTime", ""))
        if not _TIME.match(when):
            return ("dateError", "INVALID_FIELD_FORMAT",
                    "conversion_date_time must be yyyy-mm-dd hh:mm:ss+|-hh:mm.")
        try:
            datetime.fromisoformat(when.replace(" ", "T"))
        except ValueError:
            return ("dateError", "INVALID_FIELD_FORMAT", "not a date and time")
        currency = c.get("currencyCode")
        if currency is not None and not re.match(r"^[A-Z]{3}$", str(currency)):
            return ("conversionUploadError", "INVALID_CURRENCY_CODE",
                    "The currency code is not a valid ISO 4217 code.")
        known = (self.gclids is None and not str(c["gclid"]).startswith("unknown")) or (
            self.gclids is not None and c["gclid"] in self.gclids)
        if not known:
            return ("conversionUploadError", "UNPARSEABLE_GCLID",
                    "The click ID could not be decoded.")
        return None


def _operation_problem(op: Any) -> tuple[str, str] | None:
    """(code, message) of an operation Google refuses, else None."""
    if not isinstance(op, dict) or len(op) != 1 or next(iter(op)) not in ("create",
                                                                          "remove"):
        return ("INVALID_OPERATION", "An operation is one create or one remove.")
    identifiers = (next(iter(op.values())) or {}).get("userIdentifiers")
    if not isinstance(identifiers, list) or not identifiers:
        return ("MISSING_USER_IDENTIFIER", "The operation has no user identifier.")
    if len(identifiers) > MAX_IDENTIFIERS:
        return ("TOO_MANY_USER_IDENTIFIERS", "Maximum number of user identifiers allowed "
                                             "per request is 100,000 and per operation is 20.")
    for identifier in identifiers:
        if not isinstance(identifier, dict) or len(identifier) != 1:
            return ("INVALID_USER_IDENTIFIER", "An identifier sets exactly one field.")
        kind, value = next(iter(identifier.items()))
        if kind in ("hashedEmail", "hashedPhoneNumber"):
            if not isinstance(value, str) or not _HASH.match(value):
                return ("INVALID_SHA256_FORMAT", "The SHA256 encoded value is malformed.")
        elif kind == "addressInfo":
            if not isinstance(value, dict) or any(not value.get(f) for f in ADDRESS_FIELDS):
                return ("INCOMPLETE_ADDRESS", "An address needs hashed first and last name, "
                                              "country code and postal code.")
            if not all(_HASH.match(str(value[f])) for f in ADDRESS_FIELDS[:2]):
                return ("INVALID_SHA256_FORMAT", "The SHA256 encoded value is malformed.")
        else:
            return ("INVALID_USER_IDENTIFIER", f"{kind} is not a user identifier here.")
    return None


def make_app(fake: GoogleAdsFake | None = None) -> web.Application:
    """The Google Ads fake as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or GoogleAdsFake()
    app = fake_app(FAKE_KEY, fake, client_max_size=64 * 1024**2)

    async def handle(request: web.Request) -> web.Response:
        await fake.delay()
        raw = await request.read()
        entry: dict[str, Any] = {"method": request.method, "path": request.path}
        status, answer, headers = _answer(fake, request, raw, entry)
        entry["status"] = status
        fake.record(entry)
        return web.json_response(answer, status=status, headers=headers)

    app.router.add_post("/{tail:.*}", handle)
    return app


def _answer(fake: GoogleAdsFake, request: web.Request, raw: bytes, entry: dict[str, Any]
            ) -> tuple[int, Any, dict[str, str]]:
    try:
        if request.path == TOKEN_PATH:
            entry["body"] = {k: v for k, v in parse_qs(raw.decode("utf-8", "replace")).items()
                             if k == "grant_type"}
            return 200, fake.token(request, raw), {}
        body = body_json(raw)
        entry["body"] = body
        match = _ROUTE.match(request.path)
        if match is None:
            raise refused(404, "requestError", "RESOURCE_NOT_FOUND", "no such method")
        cid = match["cid"]
        entry["token"] = fake.check(request, cid)
        reply = fake.next_reply()
        if reply is not None and not reply.passes:
            return reply.status, reply.body, reply.headers
        if match["call"]:
            return 200, fake.upload(cid, body), {}
        if match["create"]:
            return 200, fake.create(cid, body), {}
        if match["action"] == "addOperations":
            return 200, fake.add(cid, match["job"], body), {}
        return 200, fake.run(cid, match["job"]), {}
    except Refused as error:
        return error.status, error.body, error.headers


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's Google Ads destination (the register_demo_destinations hook)."""
    fake = GoogleAdsFake()
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body")
        what = ""
        if isinstance(body, dict) and isinstance(body.get("operations"), list):
            what = f"{len(body['operations'])} operations"
        elif isinstance(body, dict) and isinstance(body.get("conversions"), list):
            what = f"{len(body['conversions'])} conversions"
        return f"{entry['method']} {entry['path'].rsplit('/', 1)[-1]} {what} -> " \
               f"{entry['status']}"

    def state() -> list[str]:
        members = server.call(lambda: len(fake.user_lists[DEFAULT_USER_LIST]))
        conversions = server.call(lambda: len(fake.conversions))
        tokens = server.call(lambda: fake.token_requests)
        return [f"user list {DEFAULT_USER_LIST}: {members} identifiers; {conversions} "
                f"conversions; {tokens} token request(s)"]

    return DemoDestination(
        "google_ads",
        {"plugin": "google_ads",
         "settings": {"customer_id": DEFAULT_CUSTOMER, "login_customer_id": DEFAULT_MANAGER,
                      "developer_token": DEFAULT_DEVELOPER_TOKEN,
                      "client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_CLIENT_SECRET,
                      "refresh_token": DEFAULT_REFRESH_TOKEN, "base_url": server.url,
                      "token_url": server.url + TOKEN_PATH},
         # The demo's messages carry no click ids: only the audience's membership changes
         # go to Google Ads here (click conversions: docs/destinations/google_ads.md).
         "filter": {"events": {"allow": ["audience_entered", "audience_exited"]}},
         "mapping": {"options": {"user_lists": {"high_value": DEFAULT_USER_LIST}}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
        audience=True,
        state=state,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the Google Ads contract fake.", 8095)
    args = parser.parse_args(argv)
    run_fake(make_app(GoogleAdsFake(latency=args.latency)), args,
             "Google Ads fake on {url} (base_url {url}, token_url {url}" + TOKEN_PATH
             + "; GET /_fake/received)")


if __name__ == "__main__":
    main()

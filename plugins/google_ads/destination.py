"""The Google Ads destination: Customer Match user lists kept in sync with Crossdock's audiences
(an offline user data job per batch: create, add the operations, run), and events uploaded
as offline click conversions (gclid, conversion action, time, value, currency; partial
failures read per row). The engine gets the access token (OAuth2 refresh token grant at
Google's token endpoint) and puts it on each request (docs/destinations/google_ads.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from crossdock.destination import (
    DELIVERED,
    Destination,
    Failed,
    FieldRefused,
    FollowUp,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    RefreshToken,
    Rejected,
    Retry,
    ValueRefused,
    chunks,
    first_value,
    http_outcome,
    json_request,
    per_item,
    response_json,
    short_body,
    truncate,
)
from crossdock.plugins.google_ads import normalize
from crossdock.plugins.google_ads.const import (
    ADD,
    ADD_OPERATIONS,
    AUDIENCE_ENTERED,
    AUDIENCE_EXITED,
    CONVERSIONS,
    CREATE,
    CREATE_JOB,
    MAX_CONVERSIONS,
    OPERATIONS_PER_JOB,
    PLUGIN_NAME,
    RUN,
    RUN_JOB,
    UPLOAD_CONVERSIONS,
)
from crossdock.plugins.google_ads.settings import GoogleAdsOptions, GoogleAdsSettings

MEMBERSHIP = {AUDIENCE_ENTERED: "create", AUDIENCE_EXITED: "remove"}
#: errors that say "try again" inside a 400 (RudderStack retries it; Google: a concurrent
#: change to the same resource)
RETRYABLE_CODES = frozenset({"CONCURRENT_MODIFICATION"})


class GoogleAdsDestination(Destination[GoogleAdsSettings, GoogleAdsOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/google_ads.md",
        description="Google Ads: Customer Match user lists in sync with audiences, offline "
                    "click conversions",
        message_types=frozenset({"track"}), batch_size=1000,
        max_batch_size=OPERATIONS_PER_JOB,
        # One batch at a time keeps an exit from overtaking the entry it follows.
        concurrency=1, auth="oauth2")

    def token_grant(self) -> RefreshToken:
        s = self.settings
        return RefreshToken(token_url=str(s.token_url), refresh_token=s.refresh_token,
                            client_id=s.client_id, client_secret=s.client_secret,
                            client_auth="body")

    # -- build -------------------------------------------------------------------------

    def url(self, template: str, **fields: str) -> str:
        s = self.settings
        return str(s.base_url).rstrip("/") + template.format(
            version=s.api_version, cid=s.customer_id, **fields)

    def headers(self) -> dict[str, str]:
        s = self.settings
        out = {"developer-token": s.developer_token.get_secret_value()}
        if s.login_customer_id:
            out["login-customer-id"] = s.login_customer_id
        return out

    def post(self, url: str, body: Any) -> httpx.Request:
        return json_request("POST", url, body, headers=self.headers())

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        out: list[Planned] = []
        members: dict[str, list[OutboxItem]] = {}
        conversions: list[OutboxItem] = []
        for item in items:
            event = item.payload.get("event")
            if item.payload.get("type") == "track" and event in MEMBERSHIP:
                try:
                    user_list = self.user_list(item)
                    refused: list[tuple[str, str]] = []
                    self.operation(item, refused)
                except ItemRejected as exc:
                    out.append(self.rejected(item, exc))
                    continue
                out.extend(FieldRefused(item, f, why) for f, why in refused)
                members.setdefault(user_list, []).append(item)
            elif item.payload.get("type") == "track" and event in self.opts.conversion_actions:
                conversions.append(item)
            else:
                out.append(self.rejected(item, ItemRejected(
                    "google_ads takes audience_entered / audience_exited and the events of "
                    f"options.conversion_actions, not {truncate(str(event), 60)!r}")))
        for user_list, listed in members.items():
            for batch in chunks(listed, OPERATIONS_PER_JOB):
                out.append(PlannedRequest(self.create_job(user_list), list(batch),
                                          step=CREATE))
        uploads, rejected = per_item(conversions, self.conversion)
        out.extend(rejected)
        for upload in chunks(uploads, MAX_CONVERSIONS):
            body = {"conversions": [c for _, c in upload], "partialFailure": True}
            out.append(PlannedRequest(self.post(self.url(UPLOAD_CONVERSIONS), body),
                                      [i for i, _ in upload], step=CONVERSIONS))
        return out

    @staticmethod
    def rejected(item: OutboxItem, exc: ItemRejected) -> Planned:
        return Rejected(item, exc.reason)

    # -- Customer Match ----------------------------------------------------------------

    def user_list(self, item: OutboxItem) -> str:
        audience = str((item.payload.get("properties") or {}).get("audience") or "")
        user_list = self.opts.user_lists.get(audience)
        if user_list is None:
            raise ItemRejected(f"audience {truncate(audience, 60)!r}: no Customer Match user "
                               "list for it in options.user_lists")
        return user_list

    def create_job(self, user_list: str) -> httpx.Request:
        cid = self.settings.customer_id
        metadata: dict[str, Any] = {"userList": f"customers/{cid}/userLists/{user_list}"}
        consent = {k: v for k, v in (("adUserData", self.opts.ad_user_data),
                                     ("adPersonalization", self.opts.ad_personalization))
                   if v != "UNSPECIFIED"}
        if consent:
            metadata["consent"] = consent
        return self.post(self.url(CREATE_JOB), {"job": {
            "type": "CUSTOMER_MATCH_USER_LIST", "customerMatchUserListMetadata": metadata}})

    def operation(self, item: OutboxItem, refused: list[tuple[str, str]]) -> dict[str, Any]:
        """The job operation of one membership change: create (entered) or remove (exited)
        the person's identifiers, normalized and hashed by Google's rules."""
        payload, o = item.payload, self.opts
        identifiers: list[dict[str, Any]] = []

        def take(field: str, paths: list[str], rule: Any) -> Any:
            value = first_value(payload, *paths)
            if value is None:
                return None
            try:
                return rule(value)
            except ValueRefused as exc:
                refused.append((field, exc.reason))
                return None

        email = take("email", o.email, normalize.email)
        if email:
            identifiers.append({"hashedEmail": email})
        phone = take("phone", o.phone, lambda v: normalize.phone(v, o.phone_region))
        if phone:
            identifiers.append({"hashedPhoneNumber": phone})
        address = {
            "hashedFirstName": take("first_name", o.first_name,
                                    lambda v: normalize.name(v, "first_name")),
            "hashedLastName": take("last_name", o.last_name,
                                   lambda v: normalize.name(v, "last_name")),
            "countryCode": take("country_code", o.country, normalize.country),
            "postalCode": take("postal_code", o.postal_code, normalize.postal_code)}
        if all(address.values()):
            identifiers.append({"addressInfo": address})
        elif any(address.values()):
            # Customer Match matches an address only with all four parts.
            missing = sorted(k for k, v in address.items() if not v)
            refused.append(("address", "an address needs first name, last name, country "
                                       f"and postal code; missing {', '.join(missing)}"))
        if not identifiers:
            raise ItemRejected("no identifier Customer Match can match: an email, a phone "
                               "or a full address (first and last name, country, postal "
                               "code)")
        return {MEMBERSHIP[str(payload["event"])]: {"userIdentifiers": identifiers}}

    def add_operations(self, job: str, items: Sequence[OutboxItem]) -> httpx.Request:
        operations = [self.operation(item, []) for item in items]
        # Not partial: a job that runs holds all of the batch or none of it, so a refused
        # operation (which the plugin's own normalization should make impossible) fails the
        # batch visibly instead of leaving a list quietly short of people.
        return self.post(self.url(ADD_OPERATIONS, job=job),
                         {"operations": operations, "enablePartialFailure": False})

    # -- click conversions -------------------------------------------------------------

    def conversion(self, item: OutboxItem) -> dict[str, Any]:
        payload, o = item.payload, self.opts
        gclid = first_value(payload, *o.gclid)
        if gclid is None:
            raise ItemRejected("gclid: none of " + ", ".join(o.gclid) + " holds one (a click "
                               "conversion needs the click's id)")
        action = o.conversion_actions[str(payload["event"])]
        try:
            when = normalize.conversion_time(payload.get("timestamp"))
        except ValueRefused as exc:
            raise ItemRejected(exc.reason) from None
        out: dict[str, Any] = {
            "gclid": str(gclid),
            "conversionAction": f"customers/{self.settings.customer_id}/conversionActions/"
                                f"{action}",
            "conversionDateTime": when}
        value = first_value(payload, *o.value)
        if value is not None:
            try:
                out["conversionValue"] = float(value)
            except (TypeError, ValueError):
                raise ItemRejected("value: not a number") from None
            currency = first_value(payload, *o.currency)
            if currency is not None:
                code = str(currency).strip().upper()
                if len(code) != 3 or not code.isalpha():
                    raise ItemRejected("currency: an ISO 4217 code of three letters")
                out["currencyCode"] = code
        order = first_value(payload, *o.order_id)
        if order is not None:
            out["orderId"] = str(order)
        return out

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | Sequence[Outcome] | FollowUp:
        status = response.status_code
        if not 200 <= status < 300:
            return _error_outcome(response)
        data = response_json(response) or {}
        if planned.step == CREATE:
            job = data.get("resourceName")
            if not isinstance(job, str) or "/offlineUserDataJobs/" not in job:
                return Retry("offlineUserDataJobs:create answered no job resourceName")
            return FollowUp(self.add_operations(job, planned.items), step=ADD + " " + job)
        if planned.step.startswith(ADD + " "):
            job = planned.step.removeprefix(ADD + " ")
            return FollowUp(self.post(self.url(RUN_JOB, job=job), {}), step=RUN)
        if planned.step == CONVERSIONS:
            return _per_row(planned, data)
        return DELIVERED


def _failure_errors(status: dict[str, Any]) -> list[dict[str, Any]]:
    """The GoogleAdsFailure errors a google.rpc Status carries in its details."""
    out: list[dict[str, Any]] = []
    for detail in status.get("details") or []:
        if isinstance(detail, dict):
            out.extend(e for e in detail.get("errors") or [] if isinstance(e, dict))
    return out


def _code(error: dict[str, Any]) -> str:
    """`offlineUserDataJobError.INVALID_SHA256_FORMAT` from an error's errorCode."""
    code = error.get("errorCode")
    if isinstance(code, dict) and code:
        kind, value = next(iter(code.items()))
        return f"{kind}.{value}"
    return "error"


def _per_row(planned: PlannedRequest, data: dict[str, Any]) -> list[Outcome]:
    """Each conversion's outcome: the rows partialFailureError names failed, the rest
    delivered."""
    failures: dict[int, str] = {}
    partial = data.get("partialFailureError")
    if isinstance(partial, dict) and partial.get("code"):
        for error in _failure_errors(partial):
            path = (error.get("location") or {}).get("fieldPathElements") or []
            index = next((p.get("index") for p in path if isinstance(p, dict)
                          and p.get("fieldName") == "conversions"), None)
            if isinstance(index, int):
                failures.setdefault(index, f"{_code(error)}: {error.get('message', '')}")
        if not failures:
            # A partial failure no row is named in: every row is in doubt.
            return [Failed(f"partialFailureError: {truncate(str(partial.get('message')), 300)}")
                    ] * len(planned.items)
    return [Failed(failures[i]) if i in failures else DELIVERED
            for i in range(len(planned.items))]


def _error_outcome(response: httpx.Response) -> Outcome:
    """`HTTP 400 INVALID_ARGUMENT: offlineUserDataJobError.INVALID_SHA256_FORMAT: ...` from
    a google.rpc Status; CONCURRENT_MODIFICATION retried."""
    data = response_json(response)
    error = data.get("error") if data is not None else None
    if not isinstance(error, dict):
        return http_outcome(response, f"HTTP {response.status_code}: {short_body(response)}")
    errors = _failure_errors(error)
    text = f"HTTP {response.status_code} {error.get('status', '')}: " + (
        f"{_code(errors[0])}: {errors[0].get('message', '')}" if errors
        else str(error.get("message", "")))
    reason = truncate(text, 300)
    if any(_code(e).split(".")[-1] in RETRYABLE_CODES for e in errors):
        return Retry(reason)
    return http_outcome(response, reason)


__all__ = ["GoogleAdsDestination"]

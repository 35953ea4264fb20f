"""The Salesforce Marketing Cloud destination: identify as data extension rows upserted by
contact key (batched), track as Journey Builder entry events. The engine gets the access
token (OAuth2 client credentials at the tenant's auth host) and joins these relative URLs
onto the REST base URI the token answer names (docs/destinations/sfmc.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import httpx

from crossdock.destination import (
    DELIVERED,
    ClientCredentials,
    Destination,
    DestinationContext,
    FollowUp,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    Planned,
    PlannedRequest,
    Retry,
    first_value,
    http_outcome,
    json_content,
    json_request,
    per_item,
    response_json,
    short_body,
    stringify,
    truncate,
)
from crossdock.plugins.sfmc.const import (
    EVENT,
    EVENTS_PATH,
    MAX_PAYLOAD_BYTES,
    MAX_ROWS,
    PLUGIN_NAME,
    REST_BASE_FIELD,
    ROWSET,
    ROWSET_PATH,
    SAVE_FAILED,
)
from crossdock.plugins.sfmc.settings import SfmcOptions, SfmcSettings

#: Journey Builder reads UTF-8 only when the request says so
EVENT_HEADERS = {"content-type": "application/json; charset=UTF-8"}


class SfmcDestination(Destination[SfmcSettings, SfmcOptions]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/sfmc.md",
        description="Salesforce Marketing Cloud: data extension rows by contact key, Journey "
                    "Builder entry events",
        message_types=frozenset({"track", "identify"}), batch_size=MAX_ROWS, auth="oauth2")

    def token_grant(self) -> ClientCredentials:
        s = self.settings
        # JSON body with the client in it and the MID as account_id, as the v2/token route
        # documents; the REST host comes with the token (rest_instance_url).
        return ClientCredentials(
            token_url=s.token_url, client_id=s.client_id, client_secret=s.client_secret,
            client_auth="body", body="json", scope=s.scope,
            params={"account_id": s.account_id} if s.account_id else {},
            api_base_field=REST_BASE_FIELD)

    def config_warnings(self, context: DestinationContext) -> list[str]:
        types = set(context.mapping.get("message_types") or ())
        if "identify" in types and self.opts.data_extension is None:
            return [f"destinations.{context.name}.mapping.options.data_extension: not set, so "
                    "every identify is refused; name the data extension's external key"]
        return []

    # -- build -------------------------------------------------------------------------

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        out: list[Planned] = []
        identifies = [i for i in items if i.payload.get("type") == "identify"]
        rows, rejected = per_item(identifies, self.row)
        out.extend(rejected)
        out.extend(self.rowsets(rows))
        events, rejected = per_item([i for i in items if i.payload.get("type") != "identify"],
                                    self.event)
        out.extend(rejected)
        for item, body in events:
            out.append(PlannedRequest(json_request("POST", EVENTS_PATH, body,
                                                   headers=EVENT_HEADERS),
                                      [item], EVENT, EVENT))
        return out

    def contact_key(self, payload: dict[str, Any]) -> str:
        key = first_value(payload, *self.opts.contact_key)
        if key is None:
            raise ItemRejected("ContactKey: none of " + ", ".join(self.opts.contact_key)
                               + " holds a value (options.contact_key)")
        return str(stringify(key))

    def row(self, item: OutboxItem) -> dict[str, Any]:
        """One data extension row: the primary key and the mapped traits."""
        if self.opts.data_extension is None:
            raise ItemRejected("options.data_extension: no data extension to upsert identify "
                               "rows into (its external key)")
        payload = item.payload
        key = self.contact_key(payload)
        traits = payload.get("traits") or {}
        values = {}
        for trait, column in self.opts.columns.items():
            if column and column != self.opts.primary_key:
                value = _scalar(traits.get(trait))
                if value is not None:
                    values[column] = value
        return {"keys": {self.opts.primary_key: key}, "values": values}

    def rowsets(self, rows: list[tuple[OutboxItem, dict[str, Any]]]) -> list[PlannedRequest]:
        """Rowset calls of at most MAX_ROWS rows and MAX_PAYLOAD_BYTES each, in order."""
        assert self.opts.data_extension is not None or not rows
        path = ROWSET_PATH.format(key=quote(self.opts.data_extension or "", safe=""))
        out: list[PlannedRequest] = []
        batch: list[tuple[OutboxItem, dict[str, Any]]] = []
        size = 2  # the brackets

        def flush() -> None:
            if batch:
                body = json_content([row for _, row in batch])
                out.append(PlannedRequest(json_request("POST", path, body),
                                          [item for item, _ in batch], ROWSET, ROWSET))
                batch.clear()

        for item, row in rows:
            weight = len(json_content(row)) + 1
            # A row tried before may be the one a refused rowset held: alone, its answer
            # says whether it is (Marketing Cloud does not say which row it refused).
            alone = item.attempts > 1 or (batch and batch[-1][0].attempts > 1)
            if alone or len(batch) == MAX_ROWS or size + weight > MAX_PAYLOAD_BYTES:
                flush()
                size = 2
            batch.append((item, row))
            size += weight
        flush()
        return out

    def event(self, item: OutboxItem) -> dict[str, Any]:
        """The Journey Builder entry event of a track message."""
        payload = item.payload
        name = str(payload.get("event") or "")
        definition = self.opts.journeys.get(name, self.opts.default_journey)
        if definition is None:
            raise ItemRejected(f"event: no Journey Builder entry event for {truncate(name, 60)!r}"
                               "; map it in options.journeys or set options.default_journey")
        data = {}
        for key, value in (payload.get("properties") or {}).items():
            scalar = _scalar(value)
            if scalar is not None:
                data[str(key)] = scalar
        return {"ContactKey": self.contact_key(payload), "EventDefinitionKey": definition,
                "Data": data}

    # -- classify ----------------------------------------------------------------------

    def classify(self, planned: PlannedRequest, response: httpx.Response
                 ) -> Outcome | Sequence[Outcome] | FollowUp:
        status = response.status_code
        if 200 <= status < 300:
            return DELIVERED
        data = response_json(response)
        reason = _reason(status, data, response)
        if (status == 400 and planned.step == ROWSET and data is not None
                and data.get("errorcode") == SAVE_FAILED):
            if not data.get("additionalErrors"):
                # A passing lock on the data extension (nothing wrong with the rows).
                return Retry(reason)
            if len(planned.items) > 1:
                # A row refused: Marketing Cloud saved the rows before it and none after, and
                # its errors do not reliably say which row it was. Every row is tried again,
                # each in a rowset of its own (build_requests): only the bad one dies.
                return Retry(f"{reason}; the {len(planned.items)} rows of the rowset are "
                             "tried again one by one")
        return http_outcome(response, reason)


def _scalar(value: Any) -> str | int | float | bool | None:
    """A value a data extension column or event field takes: numbers, booleans and text as
    they are, objects and lists as compact JSON text, null left out."""
    if value is None or isinstance(value, str | bool | int | float):
        return value
    return stringify(value)


def _reason(status: int, data: dict[str, Any] | None, response: httpx.Response) -> str:
    """`HTTP 400: <message> (errorcode N): <additional errors>` from Marketing Cloud's error
    body, else the start of the body."""
    if data is None or not isinstance(data.get("message"), str):
        return f"HTTP {status}: {short_body(response)}"
    text = str(data["message"])
    if isinstance(data.get("errorcode"), int):
        text += f" (errorcode {data['errorcode']})"
    extra = data.get("additionalErrors")
    if isinstance(extra, list):
        more = [str(e.get("message")) for e in extra if isinstance(e, dict) and e.get("message")]
        if more:
            text += ": " + "; ".join(more)
    return f"HTTP {status}: {truncate(text, 300)}"


__all__ = ["SfmcDestination"]

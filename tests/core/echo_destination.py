"""A tiny "echo" destination type for the engine tests, in a module of its own so test files
can import it (pytest keeps only one module named `conftest`, so `from conftest import` resolves
by collection order)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from pydantic import BaseModel

from crossdock.destination import (
    Destination,
    FieldRefused,
    OutboxItem,
    Planned,
    PlannedRequest,
    Rejected,
)


class EchoSettings(BaseModel):
    url: str


class EchoDestination(Destination):
    """Posts batches as {"batch": [{"id": message_id, "payload": ..., "attempted_at": ...}]}
    to settings.url. An item whose payload has "reject" is refused by the plugin itself; one
    with "refuse": FIELD is sent with that field reported as left out."""

    plugin_name = "echo"
    settings_model = EchoSettings
    max_batch_size = 10
    description = "test destination"

    def build_requests(self, items: Sequence[OutboxItem]) -> list[Planned]:
        out: list[Planned] = []
        batch = []
        for item in items:
            if "reject" in item.payload:
                out.append(Rejected(item, str(item.payload["reject"])))
                continue
            if "refuse" in item.payload:
                out.append(FieldRefused(item, str(item.payload["refuse"]), "not usable"))
            batch.append(item)
        if batch:
            url = self.settings.url  # type: ignore[attr-defined]
            body = {"batch": [{"id": i.message_id, "payload": i.payload,
                               "attempted_at": i.attempted_at} for i in batch]}
            out.append(PlannedRequest(httpx.Request("POST", url, json=body), batch, url))
        return out


TYPES: dict[str, type[Destination]] = {"echo": EchoDestination}

"""A tiny "echo" destination type for the engine tests, in a module of its own so test files
can import it (pytest keeps only one module named `conftest`, so `from conftest import` resolves
by collection order)."""

from __future__ import annotations

from collections.abc import Sequence

import httpx
from pydantic import BaseModel

from crossdock.destination import Destination, OutboxItem, PlannedRequest, Rejected


class EchoSettings(BaseModel):
    url: str


class EchoDestination(Destination):
    """Posts batches as {"batch": [{"id": message_id, "payload": ...}]} to settings.url.
    An item whose payload has "reject" is refused by the plugin itself."""

    plugin_name = "echo"
    settings_model = EchoSettings
    max_batch_size = 10
    description = "test destination"

    def build_requests(self, items: Sequence[OutboxItem]) -> list[PlannedRequest | Rejected]:
        out: list[PlannedRequest | Rejected] = []
        batch = []
        for item in items:
            if "reject" in item.payload:
                out.append(Rejected(item, str(item.payload["reject"])))
            else:
                batch.append(item)
        if batch:
            url = self.settings.url  # type: ignore[attr-defined]
            body = {"batch": [{"id": i.message_id, "payload": i.payload} for i in batch]}
            out.append(PlannedRequest(httpx.Request("POST", url, json=body), batch, url))
        return out


TYPES: dict[str, type[Destination]] = {"echo": EchoDestination}

"""The function destination passes the standard conformance suite (crossdock.testing): the
suite runs the payloads through the function first, as the engine does."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from crossdock.plugins.function import FunctionDestination
from crossdock.plugins.function.fake import RecordingFake, make_app
from crossdock.testing.conformance import DestinationConformance
from crossdock.testing.payloads import routed_payload

#: identifies and tracks to the endpoint; an event named "Broken" gets a request without a url
CODE = """
function onEvent(event, settings, metadata) {
  if (event.event === 'Broken') return {body: {}};
  return {method: event.type === 'identify' ? 'PUT' : 'POST',
          url: `${settings.endpoint}/${event.type}`,
          headers: {'X-Api-Key': settings.apiKey},
          body: {id: metadata.messageId, user: event.userId, event: event.event}};
}
"""


class TestFunctionConformance(DestinationConformance):
    destination = FunctionDestination
    payloads = [
        routed_payload(1, event="Order Completed"),
        routed_payload(2, type="identify", event=None, traits={"email": "ada@example.com"}),
    ]
    rejected_payload = routed_payload(3, event="Broken")

    def fake_app(self) -> web.Application:
        return make_app(RecordingFake(api_key="conformance-key"))

    def settings(self, url: str) -> dict[str, Any]:
        return {"code": CODE, "values": {"endpoint": url},
                "secrets": {"apiKey": "conformance-key"}}

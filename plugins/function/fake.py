"""Contract fake for the function destination: a recording HTTP endpoint, the kind of API a
destination function is written for (an in-house service, a vendor Crossdock has no plugin
for). A real HTTP server that records every request and refuses what such an API refuses.

    ANY /{path}      -> 200 {"ok": true, "received": n}

The contract it enforces:
- the API key in X-Api-Key (when the fake has one): missing or wrong -> 401 {"error": ...};
- a body sent as JSON (Content-Type application/json) must be JSON -> else 400;
- scripted replies (`fake.script([500])`, or POST /_fake/script) answer first, faults
  (hang, reset) break requests as every fake's.
Every answered request is kept in `received` (method, path, body, lower-cased headers,
status): what tests and the demo read.

    python -m crossdock.plugins.function.fake --port 8100 --api-key demo-key
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web

from crossdock.testing.demo import DemoContext, DemoDestination
from crossdock.testing.fakescript import FakeState, fake_app, json_handler
from crossdock.testing.fakeserver import fake_arguments, run_fake

FAKE_KEY: web.AppKey[RecordingFake] = web.AppKey("function_fake")
DEFAULT_API_KEY = "fn-test-key"


@dataclass
class RecordingFake(FakeState):
    """The endpoint's API key (None: any request is taken) and what it received."""

    api_key: str | None = DEFAULT_API_KEY

    def statuses(self) -> list[int]:
        """The status of every answered request, in arrival order."""
        return [r["status"] for r in self.received]


def make_app(fake: RecordingFake | None = None) -> web.Application:
    """The recording endpoint as an aiohttp application; its state is `app[FAKE_KEY]`."""
    fake = fake or RecordingFake()
    app = fake_app(FAKE_KEY, fake)
    handler = json_handler(fake, lambda request, body: _answer(fake, request, body))
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


def _answer(fake: RecordingFake, request: web.Request, body: Any) -> web.Response:
    if fake.api_key is not None and request.headers.get("X-Api-Key") != fake.api_key:
        return web.json_response({"error": "missing or wrong X-Api-Key"}, status=401)
    reply = fake.next_reply()
    if reply is not None and not reply.passes:
        return reply.response()
    if request.content_type == "application/json" and request.can_read_body and (
            isinstance(body, str)):
        return web.json_response({"error": "the body is not JSON"}, status=400)
    return web.json_response({"ok": True, "received": len(fake.received) + 1})


#: the demo's function: identifies and tracks to one endpoint each, pages not sent
DEMO_FUNCTION = """
function onEvent(event, settings, metadata) {
  const headers = {'x-api-key': settings.apiKey};
  if (event.type === 'identify') {
    return {method: 'PUT', url: `${settings.endpoint}/people/${event.profileId}`, headers,
            body: {email: event.traits.email || null, traits: event.traits}};
  }
  if (event.type === 'track') {
    return {url: `${settings.endpoint}/events`, headers,
            body: {name: event.event, person: event.profileId, at: event.timestamp,
                   properties: event.properties}};
  }
  return null;   // pages and the rest: nothing to send
}
"""
DEMO_KEY = "demo-function-key"


def demo_destination(context: DemoContext) -> DemoDestination:
    """The demo's function destination (the register_demo_destinations hook)."""
    fake = RecordingFake(api_key=DEMO_KEY)
    server = context.serve(make_app(fake))

    def describe(entry: dict[str, Any]) -> str:
        body = entry.get("body") if isinstance(entry.get("body"), dict) else {}
        assert isinstance(body, dict)
        what = body.get("name") or body.get("email") or ""
        return f"{entry['method']} {entry['path']} {what} -> {entry['status']}"

    return DemoDestination(
        "crm-function",
        {"plugin": "function",
         "settings": {"code": DEMO_FUNCTION, "values": {"endpoint": server.url},
                      "secrets": {"apiKey": DEMO_KEY}}},
        lambda: list(server.call(lambda: list(fake.received))),
        describe,
    )


def main(argv: list[str] | None = None) -> None:
    parser = fake_arguments("Run the function destination's recording endpoint.", 8100)
    parser.add_argument("--api-key", default=DEFAULT_API_KEY,
                        help="the X-Api-Key it takes ('' for none)")
    args = parser.parse_args(argv)
    fake = RecordingFake(api_key=args.api_key or None, latency=args.latency)
    run_fake(make_app(fake), args, "recording endpoint on {url}/ (GET /_fake/received)")


if __name__ == "__main__":
    main()

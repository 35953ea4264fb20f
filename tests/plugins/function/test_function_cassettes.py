"""Cassette tests: the requests a function returns, built by the plugin and sent to the
recording endpoint, recorded by vcrpy.

Replayed from tests/plugins/function/cassettes by default; re-record with
`CROSSDOCK_RECORD=1 .venv/bin/python -m pytest tests/plugins/function -k cassette` (the fake
is started either way).
"""

from __future__ import annotations

from pathlib import Path

from function_helpers import API_KEY, plugin

from crossdock.destination import DELIVERED, Failed, Rejected
from crossdock.plugins.function.fake import RecordingFake
from crossdock.testing.cassettes import plugin_vcr, recording
from crossdock.testing.exchange import outcomes
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.payloads import outbox_item, routed_payload

VCR = plugin_vcr(Path(__file__).parent / "cassettes", secrets=(API_KEY,))


def test_cassette_requests_of_a_function(server: RunningServer, fake: RecordingFake) -> None:
    dest = plugin(server.url)
    items = [outbox_item(routed_payload(1, event="Order Completed")),
             outbox_item(routed_payload(2, event="split")),
             outbox_item(routed_payload(3, event="unauthorized")),
             outbox_item(routed_payload(4, event="bad-url"))]
    with VCR.use_cassette("requests.yaml") as cassette:
        got = outcomes(dest, items)
    rejected = [o for o in got if isinstance(o, Rejected)]
    # the split's two requests are two outcomes
    assert [o for o in got if not isinstance(o, Rejected)] == [
        DELIVERED, DELIVERED, DELIVERED,
        Failed('HTTP 401: {"error": "missing or wrong X-Api-Key"}')]
    assert [r.item.message_id for r in rejected] == ["msg-4"]
    assert rejected[0].reason.startswith("request.url: must be an absolute http or https URL")
    assert cassette.play_count == (0 if recording() else 4)
    text = (Path(VCR.cassette_library_dir or "") / "requests.yaml").read_text()
    assert API_KEY not in text
    for method in ("POST", "PUT"):
        assert f"method: {method}" in text

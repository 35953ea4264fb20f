"""Webhook build_requests (pure) and classify: body, batching, headers, signatures, outcomes."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import pytest
from webhook_helpers import ATTEMPT_TIME, SECRET, destination, item, routed

from crossdock.destination import DELIVERED, Failed, PlannedRequest, Rejected, Retry
from crossdock.plugin_manager import destination_types
from crossdock.plugins.webhook import WebhookDestination
from crossdock.testing.payloads import outbox_item

URL = "https://hooks.example.com/in"


def planned(requests: list[PlannedRequest | Rejected]) -> list[PlannedRequest]:
    assert all(isinstance(r, PlannedRequest) for r in requests)
    return [r for r in requests if isinstance(r, PlannedRequest)]


def test_registered_through_the_entry_point() -> None:
    assert destination_types()["webhook"] is WebhookDestination


def test_by_default_the_body_is_the_routed_payload_without_rendered() -> None:
    (req,) = planned(destination(URL).build_requests([item(1)]))
    body = json.loads(req.request.content)
    assert body["messageId"] == "msg-1" and body["event"] == "Order Completed"
    assert body["properties"] == {"total": 42.5, "currency": "EUR"}
    assert "rendered" not in body
    assert req.request.method == "POST" and str(req.request.url) == URL
    assert req.request.headers["content-type"] == "application/json"
    assert [i.id for i in req.items] == [1]


def test_a_rendered_body_template_is_the_body_as_json() -> None:
    rendered = {"body": '{"name": "Order Completed", "who": "user-1"}'}
    (req,) = planned(destination(URL).build_requests([item(1, rendered=rendered)]))
    assert json.loads(req.request.content) == {"name": "Order Completed", "who": "user-1"}


def test_an_already_parsed_rendered_body_is_used_as_is() -> None:
    (req,) = planned(destination(URL).build_requests([item(1, rendered={"body": [1, 2]})]))
    assert json.loads(req.request.content) == [1, 2]


def test_a_rendered_body_that_is_not_json_rejects_only_that_item() -> None:
    out = destination(URL).build_requests([item(1, rendered={"body": "{nope"}), item(2)])
    assert isinstance(out[0], Rejected) and out[0].item.id == 1
    assert out[0].reason.startswith("mapping.templates.body: rendered text is not JSON")
    assert isinstance(out[1], PlannedRequest) and out[1].items[0].id == 2


def test_without_batch_each_item_is_its_own_request_with_its_own_id() -> None:
    reqs = planned(destination(URL).build_requests([item(1), item(2), item(3)]))
    ids = [r.request.headers["webhook-id"] for r in reqs]
    assert len(set(ids)) == 3 and all(i.startswith("msg_") for i in ids)
    assert all(len(r.items) == 1 for r in reqs)


def test_the_webhook_id_is_stable_per_message_and_endpoint() -> None:
    # Receivers deduplicate retries by webhook-id: a retry (a later attempt) keeps it, and
    # another destination's copy of the same message gets its own.
    first = planned(destination(URL).build_requests([item(1)]))[0].request
    retry = planned(destination(URL).build_requests(
        [item(1, attempted_at=ATTEMPT_TIME + 3600)]))[0].request
    other = planned(destination(URL + "/other").build_requests([item(1)]))[0].request
    assert first.headers["webhook-id"] == retry.headers["webhook-id"]
    assert first.headers["webhook-id"] != other.headers["webhook-id"]


@pytest.mark.parametrize("message_id", ["order.1714564800.paid", "a.b", "..", "x" * 200])
def test_the_webhook_id_never_holds_a_dot_from_the_message_id(message_id: str) -> None:
    # Standard Webhooks: the id must not be user controlled, "or at the very least not be
    # allowed to include any `.`" (the signed string is "{id}.{timestamp}.{body}").
    (req,) = planned(destination(URL, secret=SECRET).build_requests(
        [outbox_item(routed(1, messageId=message_id), 1, attempted_at=ATTEMPT_TIME)]))
    webhook_id = req.request.headers["webhook-id"]
    assert "." not in webhook_id and message_id not in webhook_id
    assert webhook_id.startswith("msg_") and len(webhook_id) == 36


def test_batch_sends_one_batch_body_with_a_stable_id() -> None:
    dest = destination(URL, batch=True)
    (req,) = planned(dest.build_requests([item(1), item(2)]))
    body = json.loads(req.request.content)
    assert [m["messageId"] for m in body["batch"]] == ["msg-1", "msg-2"]
    assert [i.id for i in req.items] == [1, 2]
    (again,) = planned(dest.build_requests([item(1), item(2)]))
    (other,) = planned(dest.build_requests([item(1), item(3)]))
    assert req.request.headers["webhook-id"] == again.request.headers["webhook-id"]
    assert req.request.headers["webhook-id"] != other.request.headers["webhook-id"]
    assert req.request.headers["webhook-id"].startswith("batch_")


def test_a_batch_holds_at_most_100_messages() -> None:
    reqs = planned(destination(URL, batch=True).build_requests([item(n) for n in range(250)]))
    assert [len(r.items) for r in reqs] == [100, 100, 50]
    assert [len(json.loads(r.request.content)["batch"]) for r in reqs] == [100, 100, 50]


def test_custom_headers_and_method() -> None:
    dest = destination(URL, method="PUT", headers={"X-Api-Key": "k1"})
    (req,) = planned(dest.build_requests([item(1)]))
    assert req.request.method == "PUT"
    assert req.request.headers["x-api-key"] == "k1"


def test_the_timestamp_is_the_attempt_time_not_the_message_time() -> None:
    (req,) = planned(destination(URL).build_requests([item(1)]))
    assert req.request.headers["webhook-timestamp"] == str(ATTEMPT_TIME)
    (later,) = planned(destination(URL).build_requests([item(1, attempted_at=ATTEMPT_TIME + 7.9)]))
    assert later.request.headers["webhook-timestamp"] == str(ATTEMPT_TIME + 7)


def test_a_batch_signs_the_latest_attempt_time_of_its_items() -> None:
    (req,) = planned(destination(URL, batch=True).build_requests(
        [item(1), item(2, attempted_at=ATTEMPT_TIME + 2)]))
    assert req.request.headers["webhook-timestamp"] == str(ATTEMPT_TIME + 2)


def test_unsigned_requests_carry_no_signature() -> None:
    (req,) = planned(destination(URL).build_requests([item(1)]))
    assert "webhook-signature" not in req.request.headers
    assert "x-signature" not in req.request.headers


def test_standard_webhooks_signature_matches_the_spec_computation() -> None:
    (req,) = planned(destination(URL, secret=SECRET).build_requests([item(1)]))
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    webhook_id = req.request.headers["webhook-id"]
    signed = f"{webhook_id}.{ATTEMPT_TIME}.".encode() + req.request.content
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert req.request.headers["webhook-signature"] == f"v1,{expected}"


def test_x_signature_is_a_hex_hmac_of_the_body() -> None:
    dest = destination(URL, secret="plain-secret", signature_style="x-signature")
    (req,) = planned(dest.build_requests([item(1)]))
    assert "webhook-signature" not in req.request.headers
    assert req.request.headers["x-signature"] == hmac.new(
        b"plain-secret", req.request.content, hashlib.sha1
    ).hexdigest()


def test_both_signature_styles_with_sha256() -> None:
    dest = destination(URL, secret="c2VjcmV0", signature_style="both",
                       x_signature_digest="sha256")
    (req,) = planned(dest.build_requests([item(1)]))
    assert req.request.headers["webhook-signature"].startswith("v1,")
    # X-Signature receivers HMAC with the shared text, Standard Webhooks with the decoded key.
    assert req.request.headers["x-signature"] == hmac.new(
        b"c2VjcmV0", req.request.content, hashlib.sha256
    ).hexdigest()


def test_build_requests_is_deterministic() -> None:
    dest = destination(URL, secret=SECRET)
    first = planned(dest.build_requests([item(1)]))[0].request
    second = planned(dest.build_requests([item(1)]))[0].request
    assert first.content == second.content
    assert dict(first.headers) == dict(second.headers)


def response(status: int, text: str = "", headers: dict[str, str] | None = None
             ) -> httpx.Response:
    return httpx.Response(status, text=text, headers=headers)


@pytest.mark.parametrize(
    ("status", "text", "headers", "outcome"),
    [
        (200, "", None, DELIVERED),
        (202, "queued", None, DELIVERED),
        (204, "", None, DELIVERED),
        (410, "", None, Failed("endpoint gone (410): disabled")),
        (410, "bye", None, Failed("endpoint gone (410): disabled: bye")),
        (429, "slow", {"Retry-After": "7"}, Retry("HTTP 429: slow", 7.0)),
        (502, "bad gw", None, Retry("HTTP 502: bad gw", None)),
        (503, "", {"Retry-After": "30"}, Retry("HTTP 503: ", 30.0)),
        (504, "", None, Retry("HTTP 504: ", None)),
        (500, "boom", None, Retry("HTTP 500: boom", None)),
        (400, "bad", None, Failed("HTTP 400: bad")),
        (401, "no", None, Failed("HTTP 401: no")),
        (404, "", None, Failed("HTTP 404: ")),
        (422, "x", None, Failed("HTTP 422: x")),
    ],
)
def test_classify(status: int, text: str, headers: dict[str, str] | None, outcome: object
                  ) -> None:
    dest = destination(URL)
    (req,) = planned(dest.build_requests([item(1)]))
    assert dest.classify(req, response(status, text, headers)) == outcome

"""The webhook plugin's signatures checked by what receivers run: the Standard Webhooks
reference library (`standardwebhooks` on PyPI, the Python library of
github.com/standard-webhooks/standard-webhooks) and its published test vector.

`Webhook.verify` checks the timestamp against the wall clock (its tolerance is 5 minutes and
cannot be injected), so these tests sign at the wall clock's time, as a live delivery does."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from webhook_helpers import MESSAGE_TIME, destination, item

from crossdock.destination import PlannedRequest
from crossdock.plugins.webhook.signing import standard_key, standard_signature

URL = "https://hooks.example.com/in"


def test_the_published_signing_vector() -> None:
    # libraries/javascript/src/webhook.test.ts and libraries/go/webhook_test.go
    # ("sign function works" / TestWebhookSign) in standard-webhooks/standard-webhooks.
    assert standard_signature("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                              "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                              b'{"test": 2432232314}') \
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize("secret", [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # no prefix: still the base64 of the key
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  # unpadded
    "c2VjcmV0",
])
def test_the_key_is_the_one_the_reference_library_reads(secret: str) -> None:
    reference = Webhook(secret).sign("msg_x", datetime.fromtimestamp(1614265330, UTC), "{}")
    assert standard_signature(secret, "msg_x", 1614265330, b"{}") == reference
    assert standard_key(secret)


def signed(secret: str, attempted_at: float, **settings: object) -> PlannedRequest:
    (req,) = destination(URL, secret=secret, **settings).build_requests(
        [item(1, attempted_at=attempted_at)])
    assert isinstance(req, PlannedRequest)
    return req


def verify(secret: str, planned: PlannedRequest) -> object:
    return Webhook(secret).verify(planned.request.content, dict(planned.request.headers))


@pytest.mark.parametrize("secret", ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                                    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"])
def test_the_reference_verifier_accepts_a_delivery(secret: str) -> None:
    body = verify(secret, signed(secret, time.time()))
    assert isinstance(body, dict) and body["messageId"] == "msg-1"


def test_a_retry_long_after_the_event_still_verifies() -> None:
    # The routed message is from 2024 (MESSAGE_TIME); the attempt is now. Signing the
    # message's time made every attempt more than 5 minutes after the event fail here.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    planned = signed(secret, time.time())
    assert int(planned.request.headers["webhook-timestamp"]) > MESSAGE_TIME + 86_400
    assert verify(secret, planned)


def test_a_batch_verifies_too() -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    (req,) = destination(URL, secret=secret, batch=True).build_requests(
        [item(1, attempted_at=time.time()), item(2, attempted_at=time.time())])
    assert isinstance(req, PlannedRequest)
    body = verify(secret, req)
    assert isinstance(body, dict) and len(body["batch"]) == 2


def test_the_reference_verifier_refuses_a_request_signed_an_hour_ago() -> None:
    # What a receiver does with a stale attempt time: the check the engine's fresh time passes.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify(secret, signed(secret, time.time() - 3600))

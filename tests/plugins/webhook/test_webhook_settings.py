"""Webhook settings: URLs, reserved headers, secrets, signature styles."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crossdock.models import validation_problems
from crossdock.plugins.webhook import WebhookSettings


def problems(**settings: object) -> list[str]:
    with pytest.raises(ValidationError) as info:
        WebhookSettings.model_validate(settings)
    return validation_problems(info.value, "settings")


def test_a_public_https_url_is_accepted() -> None:
    settings = WebhookSettings.model_validate({"url": "https://hooks.example.com/in"})
    assert str(settings.url) == "https://hooks.example.com/in"
    assert settings.method == "POST" and settings.secret is None


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "gopher://a/"])
def test_only_http_and_https_urls(url: str) -> None:
    assert problems(url=url) == ["settings.url: URL scheme should be 'http' or 'https'"]


def test_private_addresses_are_the_engines_to_refuse_not_the_settings() -> None:
    # The engine's egress guard refuses them at connect time for every destination, and the
    # config loader warns about a literal one (tests/core/test_egress.py); the webhook's own
    # opt-in is delivery.allow_private_network now (tests/core/test_config.py).
    settings = WebhookSettings.model_validate({"url": "http://127.0.0.1:8080/h"})
    assert settings.url.host == "127.0.0.1"
    assert problems(url="http://127.0.0.1/h", allow_private_network=True) == [
        "settings.allow_private_network: Extra inputs are not permitted"]


def test_headers_may_not_override_what_crossdock_sets() -> None:
    assert problems(url="https://a.example", headers={"Webhook-Signature": "x", "X-Api": "k"}) \
        == ["settings.headers: may not set Webhook-Signature: Crossdock sets these headers itself"]


@pytest.mark.parametrize(("secret", "why"), [
    ("whsec_not base64!", "' ' is not a base64 character"),
    ("plain-secret", "'-' is not a base64 character"),
    ("url_safe", "'_' is not a base64 character"),
    ("ab=cd", "'=' may only pad its end"),
])
def test_a_standard_webhooks_secret_must_be_base64(secret: str, why: str) -> None:
    # The reference libraries would silently drop these characters and sign with another key.
    assert problems(url="https://a.example", secret=secret) == [
        "settings.secret: must be base64 after the optional whsec_ prefix (Standard "
        f"Webhooks' secret format); {why}"
    ]


@pytest.mark.parametrize("secret", ["", "whsec_"])
def test_an_empty_secret_is_refused(secret: str) -> None:
    # standardwebhooks raises EmptyWebhookSecretError for "" and for "whsec_" alone.
    (problem,) = problems(url="https://a.example", secret=secret)
    assert problem.startswith("settings.secret: must not be empty")


def test_a_secret_whose_length_no_base64_has_is_refused() -> None:
    assert problems(url="https://a.example", secret="whsec_abcde") == [
        "settings.secret: is not valid base64 (5 characters cannot be a base64 encoding)"
    ]


@pytest.mark.parametrize("secret", [
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # standardwebhooks' test secret, prefixed
    "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",  # the same without the prefix
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS",  # unpadded (the full form ends in "=")
])
def test_base64_secrets_with_or_without_prefix_and_padding_are_accepted(secret: str) -> None:
    settings = WebhookSettings.model_validate({"url": "https://a.example", "secret": secret})
    assert settings.secret is not None


def test_an_x_signature_secret_may_be_any_text() -> None:
    # Segment-style receivers HMAC with the shared text; only Standard Webhooks needs base64.
    settings = WebhookSettings.model_validate({
        "url": "https://a.example", "secret": "plain-secret!", "signature_style": "x-signature"})
    assert settings.secret is not None
    assert problems(url="https://a.example", secret="plain-secret!", signature_style="both") \
        == ["settings.secret: must be base64 after the optional whsec_ prefix (Standard "
            "Webhooks' secret format); '-' is not a base64 character"]


def test_signature_styles_other_than_standard_need_a_secret() -> None:
    assert problems(url="https://a.example", signature_style="both") == [
        "settings.secret: signature_style 'both' needs a secret"
    ]


def test_the_secret_never_shows_in_the_settings_repr() -> None:
    settings = WebhookSettings.model_validate({"url": "https://a.example", "secret": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()


def test_unknown_settings_are_refused_by_name() -> None:
    assert problems(url="https://a.example", timeout=5) == [
        "settings.timeout: Extra inputs are not permitted"
    ]

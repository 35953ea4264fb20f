"""Webhook settings: the SSRF guard, reserved headers, secrets, signature styles."""

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


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:8080/h", "127.0.0.1"),
        ("http://localhost/h", "localhost"),
        ("http://10.1.2.3/h", "10.1.2.3"),
        ("http://192.168.0.9/h", "192.168.0.9"),
        ("http://169.254.169.254/latest/meta-data", "169.254.169.254"),
        ("http://[::1]/h", "[::1]"),
        ("http://2130706433/h", "127.0.0.1"),  # the decimal spelling of 127.0.0.1
        ("http://0.0.0.0/h", "0.0.0.0"),
    ],
)
def test_private_and_loopback_targets_need_allow_private_network(url: str, host: str) -> None:
    assert problems(url=url) == [
        f"settings.url: {host} is a loopback or private address; set "
        "allow_private_network: true to send there"
    ]
    allowed = WebhookSettings.model_validate({"url": url, "allow_private_network": True})
    assert allowed.url.host


def test_headers_may_not_override_what_crossdock_sets() -> None:
    assert problems(url="https://a.example", headers={"Webhook-Signature": "x", "X-Api": "k"}) \
        == ["settings.headers: may not set Webhook-Signature: Crossdock sets these headers itself"]


def test_a_whsec_secret_must_be_base64() -> None:
    assert problems(url="https://a.example", secret="whsec_not base64!") == [
        "settings.secret: a secret starting with whsec_ must be base64 after it"
    ]


def test_signature_styles_other_than_standard_need_a_secret() -> None:
    assert problems(url="https://a.example", signature_style="both") == [
        "settings.signature_style: 'both' needs a secret"
    ]


def test_the_secret_never_shows_in_the_settings_repr() -> None:
    settings = WebhookSettings.model_validate({"url": "https://a.example", "secret": "hunter2"})
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in settings.model_dump_json()


def test_unknown_settings_are_refused_by_name() -> None:
    assert problems(url="https://a.example", timeout=5) == [
        "settings.timeout: Extra inputs are not permitted"
    ]

"""One answer to "did this person consent?" for a person who never said (WebEngage's rule:
email and SMS on by default, WhatsApp off), configured per channel in
`profiles.consent_defaults`.

Before, a person who never sent an opt-in counted as not opted in for
`rules.require_consent: [email]` (the webhook below was skipped), while Mailchimp subscribed
them: one person, two answers. accept -> profile -> route -> outbox -> deliver -> the contract
fakes of Mailchimp and the webhook (crossdock.testing.pipeline)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from crossdock.errors import ConfigError
from crossdock.loader import parse_config
from crossdock.plugins.mailchimp.fake import DEFAULT_KEY, DEFAULT_LIST, MailchimpFake
from crossdock.plugins.mailchimp.fake import make_app as mailchimp_app
from crossdock.plugins.webhook.fake import WebhookFake
from crossdock.plugins.webhook.fake import make_app as webhook_app
from crossdock.testing.fakeserver import RunningServer, serve
from crossdock.testing.pipeline import run_pipeline


@pytest.fixture(scope="module")
def mailchimp() -> Iterator[tuple[MailchimpFake, RunningServer]]:
    fake = MailchimpFake()
    with serve(mailchimp_app(fake)) as server:
        yield fake, server


@pytest.fixture(scope="module")
def webhook() -> Iterator[tuple[WebhookFake, RunningServer]]:
    fake = WebhookFake()
    with serve(webhook_app(fake)) as server:
        yield fake, server


def config(tmp_path: Path, mailchimp_url: str, webhook_url: str,
           **profiles: Any) -> dict[str, Any]:
    return {
        "outbox": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
        "collector": {"enabled": False},
        "profiles": profiles,
        "destinations": {
            "news": {"plugin": "mailchimp",
                     "settings": {"api_key": DEFAULT_KEY, "list_id": DEFAULT_LIST,
                                  "base_url": mailchimp_url + "/3.0"},
                     "filter": {"message_types": ["identify"]},
                     "delivery": {"allow_private_network": True}},
            "mail-only": {"plugin": "webhook", "settings": {"url": webhook_url},
                          "rules": {"require_consent": ["email"]},
                          "delivery": {"allow_private_network": True}},
            "whatsapp-only": {"plugin": "webhook", "settings": {"url": webhook_url},
                              "rules": {"require_consent": ["whatsapp"]},
                              "delivery": {"allow_private_network": True}},
        },
    }


def identify(email: str, **traits: Any) -> dict[str, Any]:
    return {"type": "identify", "userId": email, "messageId": f"m-{email}",
            "traits": {"email": email, **traits}}


def sent_to(rows: list[dict[str, Any]], email: str) -> set[str]:
    return {r["destination"] for r in rows if r["message_id"] == f"m-{email}"}


async def test_email_and_sms_are_on_by_default_and_whatsapp_off(
        tmp_path: Path, mailchimp: tuple[MailchimpFake, RunningServer],
        webhook: tuple[WebhookFake, RunningServer]) -> None:
    (mc, mc_server), (_, hook_server) = mailchimp, webhook
    run = await run_pipeline(config(tmp_path, mc_server.url, hook_server.url),
                             [identify("never@example.com"),
                              identify("said-no@example.com", emailOptIn=False)],
                             base_dir=tmp_path)
    assert run.loaded.config.profiles.consent_defaults == {
        "email": True, "sms": True, "whatsapp": False}
    # Never said: the email rule passes and Mailchimp subscribes: the same answer.
    assert sent_to(run.rows, "never@example.com") == {"news", "mail-only"}
    never = mc.member("never@example.com")
    assert never is not None and never.status == "subscribed"
    # Said no: both say no.
    assert sent_to(run.rows, "said-no@example.com") == {"news"}
    said_no = mc.member("said-no@example.com")
    assert said_no is not None and said_no.status == "unsubscribed"
    assert run.report.dead == 0


async def test_the_defaults_are_configured_per_channel(
        tmp_path: Path, mailchimp: tuple[MailchimpFake, RunningServer],
        webhook: tuple[WebhookFake, RunningServer]) -> None:
    (mc, mc_server), (_, hook_server) = mailchimp, webhook
    run = await run_pipeline(
        config(tmp_path, mc_server.url, hook_server.url,
               consent_defaults={"email": False, "whatsapp": True}),
        [identify("quiet@example.com"), identify("yes@example.com", emailOptIn=True)],
        base_dir=tmp_path)
    # Keys not given keep their documented default.
    assert run.loaded.config.profiles.consent_defaults == {
        "email": False, "sms": True, "whatsapp": True}
    assert sent_to(run.rows, "quiet@example.com") == {"news", "whatsapp-only"}
    quiet = mc.member("quiet@example.com")
    # Not opted in to marketing email: not subscribed by Mailchimp either.
    assert quiet is not None and quiet.status == "transactional"
    assert sent_to(run.rows, "yes@example.com") == {"news", "mail-only", "whatsapp-only"}
    yes = mc.member("yes@example.com")
    assert yes is not None and yes.status == "subscribed"


def test_a_consent_default_must_name_a_purpose(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"profiles\.consent_defaults"):
        parse_config({"profiles": {"consent_defaults": {" ": True}}}, base_dir=tmp_path,
                     env={})
    with pytest.raises(ConfigError, match=r"profiles\.consent_defaults\.email"):
        parse_config({"profiles": {"consent_defaults": {"email": "maybe"}}},
                     base_dir=tmp_path, env={})

"""An operator's `mapping.options` reach the Mailchimp plugin: crossdock.yaml -> accept ->
profile -> route -> outbox -> deliver -> the contract fake, and `crossdock validate` names a
bad option by its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from crossdock.cli import cli
from crossdock.errors import ConfigError
from crossdock.loader import parse_config
from crossdock.plugins.mailchimp.fake import (
    DEFAULT_KEY,
    DEFAULT_LIST,
    DEFAULT_MERGE_FIELDS,
    MailchimpFake,
)
from crossdock.testing.fakeserver import RunningServer
from crossdock.testing.pipeline import run_pipeline

IDENTIFY = {"type": "identify", "userId": "u1", "messageId": "m-1",
            "traits": {"email": "ann@home.example", "workEmail": "ann@work.example",
                       "firstName": "Ann", "company": "Acme"}}


@pytest.fixture
def fake() -> MailchimpFake:
    """Overrides conftest's: this audience also has a COMPANY merge field."""
    return MailchimpFake(merge_field_types={**DEFAULT_MERGE_FIELDS, "COMPANY": "text"})


def config(tmp_path: Path, url: str, mapping: dict[str, Any] | None = None,
           **settings: Any) -> dict[str, Any]:
    destination: dict[str, Any] = {
        "plugin": "mailchimp",
        "settings": {"api_key": DEFAULT_KEY, "list_id": DEFAULT_LIST, "base_url": url,
                     **settings},
        "delivery": {"allow_private_network": True},  # the fake is on 127.0.0.1
    }
    if mapping is not None:
        destination["mapping"] = mapping
    return {"outbox": {"url": f"sqlite:///{tmp_path / 'outbox.db'}"},
            "collector": {"enabled": False}, "destinations": {"news": destination}}


async def members(tmp_path: Path, server: RunningServer, fake: MailchimpFake,
                  mapping: dict[str, Any] | None = None, **settings: Any
                  ) -> dict[str, dict[str, Any]]:
    run = await run_pipeline(config(tmp_path, server.url + "/3.0", mapping, **settings),
                             [IDENTIFY], base_dir=tmp_path)
    assert run.report.delivered == 1, run.rows
    state = server.call(fake.snapshot)
    return {m["email_address"]: m for m in state["lists"][DEFAULT_LIST].values()}


async def test_the_shipped_options_read_email_and_first_name(
        tmp_path: Path, server: RunningServer, fake: MailchimpFake) -> None:
    sent = await members(tmp_path, server, fake)
    assert list(sent) == ["ann@home.example"]
    assert sent["ann@home.example"]["merge_fields"] == {"FNAME": "Ann"}


async def test_an_operators_email_and_merge_fields_change_what_is_sent(
        tmp_path: Path, server: RunningServer, fake: MailchimpFake) -> None:
    mapping = {"options": {"email": ["workEmail", "email"],
                           # merged into the shipped map: one added, one taken out
                           "merge_fields": {"company": "COMPANY", "firstName": None}}}
    sent = await members(tmp_path, server, fake, mapping)
    assert list(sent) == ["ann@work.example"]
    assert sent["ann@work.example"]["merge_fields"] == {"COMPANY": "Acme"}


async def test_settings_merge_fields_still_replace_the_options_map(
        tmp_path: Path, server: RunningServer, fake: MailchimpFake) -> None:
    mapping = {"options": {"merge_fields": {"company": "COMPANY"}}}
    sent = await members(tmp_path, server, fake, mapping, merge_fields={"company": "COMPANY"})
    assert sent["ann@home.example"]["merge_fields"] == {"COMPANY": "Acme"}


@pytest.mark.parametrize(("options", "problem"), [
    ({"emial": ["workEmail"]},
     "destinations.news.mapping.options.emial: unknown option (did you mean 'email'?)"),
    ({"merge_fields": {"company": "company"}},
     "destinations.news.mapping.options.merge_fields: merge tags are 1-10 upper-case "
     "letters, digits or _: 'company'"),
    ({"email": "workEmail"},
     "destinations.news.mapping.options.email: Input should be a valid list"),
])
def test_a_bad_option_is_named_by_its_path(tmp_path: Path, options: dict[str, Any],
                                           problem: str) -> None:
    raw = config(tmp_path, "http://127.0.0.1:9/3.0", {"options": options})
    with pytest.raises(ConfigError) as caught:
        parse_config(raw, base_dir=tmp_path, env={})
    assert caught.value.problems == [problem]


def test_crossdock_validate_reports_an_unknown_option(tmp_path: Path) -> None:
    path = tmp_path / "crossdock.yaml"
    path.write_text(
        "collector: {enabled: false}\n"
        "destinations:\n"
        "  news:\n"
        "    plugin: mailchimp\n"
        "    settings: {api_key: k-us1, list_id: L1}\n"
        "    mapping: {options: {merge_field: {company: COMPANY}}}\n")
    result = CliRunner().invoke(cli, ["validate", "-c", str(path)])
    assert result.exit_code == 1
    assert ("destinations.news.mapping.options.merge_field: unknown option (did you mean "
            "'merge_fields'?)") in " ".join(result.output.split())


async def test_flat_address_traits_and_a_stated_status_reach_mailchimp(
        tmp_path: Path, server: RunningServer, fake: MailchimpFake) -> None:
    # mParticle's reserved $Address, $City, $State, $Zip become the flat traits address,
    # city, state, zip in the profile; they make the ADDRESS merge field, and the person's
    # subscriptionStatus is the member's status.
    identify = {"type": "identify", "userId": "u2", "messageId": "m-2",
                "traits": {"email": "bo@home.example", "$Address": "1 Main St",
                           "$City": "Springfield", "$State": "IL", "$Zip": "62701",
                           "subscriptionStatus": "unsubscribed"}}
    run = await run_pipeline(config(tmp_path, server.url + "/3.0"), [identify],
                             base_dir=tmp_path)
    assert run.report.delivered == 1, run.rows
    member = fake.member("bo@home.example")
    assert member is not None and member.status == "unsubscribed"
    assert member.merge_fields == {"ADDRESS": {"addr1": "1 Main St", "city": "Springfield",
                                               "state": "IL", "zip": "62701"}}

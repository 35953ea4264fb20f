"""Group calls: routed with their groupId and the group's traits to destinations whose plugin
takes them, filtered by `message_types` and the event-attribute filter, skipped by plugins
that do not list them."""

from __future__ import annotations

from route_helpers import dest, msg, routed, skipped

from crossdock.destination import ALL_MESSAGE_TYPES, DEFAULT_MESSAGE_TYPES, Destination
from crossdock.plugins.facebook_audience import FacebookAudienceDestination
from crossdock.plugins.mailchimp import MailchimpDestination
from crossdock.plugins.sessionm import SessionMDestination
from crossdock.plugins.slack import SlackDestination
from crossdock.plugins.webhook import WebhookDestination


def group(**fields: object) -> object:
    return msg("group", groupId="acme", traits={"name": "ACME", "employees": 42}, **fields)


def test_a_group_call_is_routed_with_the_groups_traits() -> None:
    payload = routed(group(), dest())
    assert (payload["type"], payload["groupId"], payload["userId"]) == ("group", "acme", "u-1")
    assert payload["groupTraits"] == {"name": "ACME", "employees": 42}
    assert payload["traits"] == {} and payload["properties"] == {}
    assert payload["event"] is None


def test_the_filters_allow_and_deny_group_calls() -> None:
    assert skipped(group(), dest(filter={"message_types": ["track"]})) == (
        "filtered: type 'group' not allowed")
    assert routed(group(), dest(filter={"message_types": ["group"]}))["groupId"] == "acme"
    payload = routed(group(), dest(filter={"event_attributes": {"deny": ["employees"]}}))
    assert payload["groupTraits"] == {"name": "ACME"}
    # The events filter is about events; a group call is none.
    assert routed(group(), dest(filter={"events": {"allow": []}}))["groupId"] == "acme"


def test_a_plugin_that_names_no_types_gets_no_group_calls() -> None:
    assert skipped(group(), dest(message_types=DEFAULT_MESSAGE_TYPES)) == (
        "type: group not supported")
    assert Destination.message_types == DEFAULT_MESSAGE_TYPES


def test_which_built_in_plugins_take_group_calls() -> None:
    assert WebhookDestination.message_types == ALL_MESSAGE_TYPES
    assert SlackDestination.message_types == ALL_MESSAGE_TYPES
    for plugin in (MailchimpDestination, SessionMDestination, FacebookAudienceDestination):
        assert "group" not in plugin.message_types

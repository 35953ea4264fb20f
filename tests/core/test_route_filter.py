"""The data filter: message types, events, attributes and identities; forward-by-default and
forward-nothing destinations; deny beats allow; globs; original names; opt-in system events."""

from __future__ import annotations

from typing import Any

import pytest
from route_helpers import dest, load, msg, routed, skipped

FORWARD_NOTHING = {"forward_by_default": False}

EVENT_CASES = [
    # (shipped mapping, operator filter.events, event, passes)
    ({}, {}, "Order Completed", True),
    ({}, {"deny": ["Order Completed"]}, "Order Completed", False),
    ({}, {"deny": ["Order Completed"]}, "Cart Viewed", True),
    ({}, {"allow": ["Cart Viewed"]}, "Order Completed", False),
    ({}, {"allow": ["Cart Viewed"]}, "Cart Viewed", True),
    ({}, {"allow": []}, "Cart Viewed", False),
    ({}, {"allow": ["Order *"]}, "Order Completed", True),
    ({}, {"allow": ["Order *"]}, "Ordered", False),
    ({}, {"allow": ["Order ?ompleted"]}, "Order Completed", True),
    ({}, {"allow": ["order completed"]}, "Order Completed", False),  # case sensitive
    ({}, {"allow": ["Order *"], "deny": ["Order Completed"]}, "Order Completed", False),
    ({}, {"allow": ["Order Completed"], "deny": ["*"]}, "Order Completed", False),
    ({}, {"deny": ["Debug *"]}, "Debug ping", False),
    ({}, {"deny": ["Debug *"]}, "Order Completed", True),
    (FORWARD_NOTHING, {}, "Order Completed", False),
    (FORWARD_NOTHING, {"deny": ["Other"]}, "Order Completed", False),
    (FORWARD_NOTHING, {"allow": ["Order Completed"]}, "Order Completed", True),
    (FORWARD_NOTHING, {"allow": ["Order *"]}, "Order Completed", True),
    (FORWARD_NOTHING, {"allow": ["*"], "deny": ["Order Completed"]}, "Order Completed", False),
]


@pytest.mark.parametrize(("shipped", "events", "event", "passes"), EVENT_CASES)
def test_events(shipped: dict[str, Any], events: dict[str, Any], event: str,
                passes: bool) -> None:
    d = dest(shipped, filter={"events": events})
    m = msg(event=event)
    if passes:
        assert routed(m, d)["event"] == event
    else:
        assert skipped(m, d) == f"filtered: event {event!r} not allowed"


@pytest.mark.parametrize("kind", ["page", "screen"])
def test_page_and_screen_names_are_filtered_as_events(kind: str) -> None:
    d = dest(FORWARD_NOTHING, filter={"events": {"allow": ["Home"]}})
    assert routed(msg(kind, name="Home"), d)["event"] == "Home"
    assert skipped(msg(kind, name="Cart"), d) == "filtered: event 'Cart' not allowed"
    # An unnamed page or screen goes by its type's name.
    assert skipped(msg(kind), d) == f"filtered: event {kind!r} not allowed"
    assert routed(msg(kind), dest(FORWARD_NOTHING, filter={"events": {"allow": [kind]}})
                  )["event"] == kind


ATTRIBUTE_CASES = [
    # (shipped, operator filter.event_attributes, properties kept)
    ({}, {}, {"a", "b", "secret"}),
    ({}, {"deny": ["secret"]}, {"a", "b"}),
    ({}, {"allow": ["a", "secret"]}, {"a", "secret"}),
    ({}, {"allow": ["a", "secret"], "deny": ["secret"]}, {"a"}),
    ({}, {"allow": ["*"], "deny": ["s*"]}, {"a", "b"}),
    (FORWARD_NOTHING, {}, set()),
    (FORWARD_NOTHING, {"allow": ["b"]}, {"b"}),
    (FORWARD_NOTHING, {"allow": ["[ab]"]}, {"a", "b"}),
]


@pytest.mark.parametrize(("shipped", "flt", "kept"), ATTRIBUTE_CASES)
def test_event_attributes_are_dropped_but_the_message_goes(
    shipped: dict[str, Any], flt: dict[str, Any], kept: set[str]
) -> None:
    d = dest(shipped, filter={"events": {"allow": ["*"]}, "event_attributes": flt})
    payload = routed(msg(properties={"a": 1, "b": 2, "secret": 3}), d)
    assert set(payload["properties"]) == kept
    # What the filter removes is the operator's wish, not a loss: it is not counted.
    assert payload["dropped"] == {"event_attributes": 0, "user_attributes": 0}


@pytest.mark.parametrize(("shipped", "flt", "kept"), [
    ({}, {}, {"plan", "email"}),
    ({}, {"deny": ["email"]}, {"plan"}),
    (FORWARD_NOTHING, {}, set()),
    (FORWARD_NOTHING, {"allow": ["plan"]}, {"plan"}),
])
def test_user_attributes(shipped: dict[str, Any], flt: dict[str, Any], kept: set[str]) -> None:
    d = dest(shipped, filter={"events": {"allow": ["*"]}, "user_attributes": flt})
    payload = routed(msg(user_attributes={"plan": "pro", "email": "a@x.io"}), d)
    assert set(payload["traits"]) == kept


@pytest.mark.parametrize(("shipped", "flt", "kept"), [
    ({}, {}, {"userId", "email"}),
    ({}, {"deny": ["email"]}, {"userId"}),
    (FORWARD_NOTHING, {}, set()),
    (FORWARD_NOTHING, {"allow": ["email"]}, {"email"}),
    # Identities the mapping always forwards ignore the filter, deny included.
    ({"identities": {"always": ["userId"]}}, {"deny": ["userId", "email"]}, {"userId"}),
    ({**FORWARD_NOTHING, "identities": {"always": ["profileId"]}}, {}, {"profileId"}),
])
def test_identities(shipped: dict[str, Any], flt: dict[str, Any], kept: set[str]) -> None:
    d = dest(shipped, filter={"events": {"allow": ["*"]}, "identities": flt})
    payload = routed(msg(identities={"userId": "u-1", "email": "a@x.io"}, profile_id="p-9"), d)
    assert set(payload["identities"]) == kept
    if "profileId" in kept:
        assert payload["identities"]["profileId"] == "p-9"


SESSIONM_LIKE = {"forward_by_default": False, "identities": {"always": ["profileId"]}}


@pytest.mark.parametrize(("flt", "traits", "passes"), [
    ({}, {"plan": "pro"}, False),
    ({"user_attributes": {"allow": ["plan"]}}, {"plan": "pro"}, True),
    ({"user_attributes": {"allow": ["plan"]}}, {"email": "a@x.io"}, False),
    ({"identities": {"allow": ["email"]}}, {}, True),
    ({"identities": {"allow": ["email"], "deny": ["email"]}}, {"plan": "pro"}, False),
])
def test_identify_to_a_forward_nothing_destination_needs_one_enabled_attribute_or_identity(
    flt: dict[str, Any], traits: dict[str, Any], passes: bool
) -> None:
    d = dest(SESSIONM_LIKE, filter=flt)
    m = msg("identify", traits=traits, user_attributes=traits,
            identities={"userId": "u-1", "email": "a@x.io"}, profile_id="p-1")
    if passes:
        assert routed(m, d)["type"] == "identify"
    else:
        # The always-forwarded profileId alone does not make an identify worth sending.
        assert skipped(m, d) == "filtered: no user attribute or identity enabled"


def test_identify_to_a_forward_everything_destination_always_goes() -> None:
    assert routed(msg("identify", user_attributes={}, identities={}), dest())["traits"] == {}


def test_filters_see_the_original_names() -> None:
    shipped = {"keys": {"normalize": "non_alphanumeric_to_underscore"},
               "event_names": {"Order Completed": "purchase"},
               "reserved": {"$FirstName": "first_name"}}
    d = dest(shipped, filter={"events": {"allow": ["Order Completed"]},
                              "event_attributes": {"deny": ["card number"]},
                              "user_attributes": {"allow": ["$FirstName", "Plan!"]}})
    payload = routed(msg(properties={"card number": "4111", "order id": "o-1"},
                         user_attributes={"$FirstName": "Ann", "Plan!": "pro", "x y": 1}), d)
    assert payload["event"] == "purchase"
    assert payload["properties"] == {"order_id": "o-1"}
    assert payload["traits"] == {"first_name": "Ann", "Plan_": "pro"}
    # The mapped name is not what the filter matches.
    d = dest(shipped, filter={"events": {"allow": ["purchase"]}})
    assert skipped(msg(), d) == "filtered: event 'Order Completed' not allowed"


@pytest.mark.parametrize(("shipped", "events", "passes"), [
    ({}, {}, False),                                    # forward-everything: still opt-in
    ({}, {"allow": ["*"]}, False),                      # "*" does not name it
    ({}, {"allow": ["session_end"]}, True),
    ({}, {"allow": ["session_*"]}, True),
    ({}, {"allow": ["session_end"], "deny": ["session_end"]}, False),
    (FORWARD_NOTHING, {"allow": ["session_end", "Order Completed"]}, True),
])
def test_system_events_are_opt_in_by_name(shipped: dict[str, Any], events: dict[str, Any],
                                          passes: bool) -> None:
    d = dest(shipped, filter={"events": events})
    m = msg(event="session_end", properties={"durationSeconds": 3300}, system=True)
    if passes:
        assert routed(m, d)["event"] == "session_end"
    else:
        assert skipped(m, d) == "filtered: system event 'session_end' not enabled"


def test_an_ordinary_event_of_the_same_name_is_not_opt_in() -> None:
    assert routed(msg(event="session_end"), dest())["event"] == "session_end"


@pytest.mark.parametrize(("plugin_types", "shipped", "flt", "reason"), [
    (frozenset({"track"}), {}, {}, "type: screen not supported"),
    (frozenset({"track", "screen"}), {"message_types": ["track"]}, {},
     "type: screen not supported"),
    (frozenset({"track", "screen"}), {}, {"message_types": ["track"]},
     "filtered: type 'screen' not allowed"),
])
def test_message_types(plugin_types: frozenset[str], shipped: dict[str, Any],
                       flt: dict[str, Any], reason: str) -> None:
    d = dest(shipped, filter=flt, message_types=plugin_types)
    assert skipped(msg("screen", name="Home"), d) == reason
    assert routed(msg(), d)["type"] == "track"


@pytest.mark.parametrize(("flt", "kept"), [
    # mParticle's and Segment's names match what the profile store keeps them as...
    ({"allow": ["$FirstName", "$Zip", "first_name"]}, {"firstName", "zip"}),
    ({"allow": ["*"], "deny": ["$FirstName", "$City"]}, {"zip", "plan", "$Age"}),
    # ...and Crossdock's own name still matches only itself and its aliases' stored form.
    ({"allow": ["firstName", "$Age"]}, {"firstName", "$Age"}),
])
def test_dollar_names_match_the_attribute_the_profile_keeps(flt: dict[str, Any],
                                                            kept: set[str]) -> None:
    d = dest(FORWARD_NOTHING, filter={"events": {"allow": ["*"]}, "user_attributes": flt})
    stored = {"firstName": "Ann", "zip": "0150", "city": "Oslo", "plan": "pro", "$Age": 40}
    assert set(routed(msg(user_attributes=stored), d)["traits"]) == kept
    # Without a profile store the message keeps the name as sent: it matches too.
    if "$FirstName" in (flt.get("allow") or []):
        assert set(routed(msg(user_attributes={"$FirstName": "Ann"}), d)["traits"]) == {
            "$FirstName"}


def test_validate_warns_about_every_filter_name_that_cannot_match() -> None:
    names = ["$FirstName", "$LastName", "$Gender", "$Mobile", "$Address", "$City", "$State",
             "$Zip", "$Country", "$Age", "we_score", "we_*", "n" * 50, "plan", "first_name"]
    loaded = load(filter={"user_attributes": {"allow": names, "deny": ["we_tier"]},
                          "identities": {"allow": ["email", "phone", "$Mobile", "user*"]}})
    assert loaded.warnings == [
        "destinations.d.filter.user_attributes.allow: 'we_score' can never match: it starts "
        "with the reserved prefix 'we_': such attributes are ignored, never stored "
        "(profiles.attributes.reserved_prefixes)",
        "destinations.d.filter.user_attributes.allow: 'we_*' can never match: it starts with "
        "the reserved prefix 'we_': such attributes are ignored, never stored "
        "(profiles.attributes.reserved_prefixes)",
        f"destinations.d.filter.user_attributes.allow: {'n' * 50!r} can never match: it is "
        "longer than 49 characters, and no longer name is stored",
        "destinations.d.filter.user_attributes.deny: 'we_tier' can never match: it starts "
        "with the reserved prefix 'we_': such attributes are ignored, never stored "
        "(profiles.attributes.reserved_prefixes)",
        "destinations.d.filter.identities.allow: 'phone' can never match: it is no identity "
        "type: a profile's identities are userId, anonymousId, email (profileId where the "
        "mapping forwards it)",
        "destinations.d.filter.identities.allow: '$Mobile' can never match: it is no "
        "identity type: a profile's identities are userId, anonymousId, email (profileId "
        "where the mapping forwards it)",
    ]

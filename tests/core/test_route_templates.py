"""Mapping templates: sandboxed Jinja2 with StrictUndefined, compiled once per destination,
rendered with the routed payload; render errors reported per message."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pluggy
import pytest
from route_helpers import dest, load, msg, routed

from crossdock import hookspecs
from crossdock.errors import ConfigError, MessageError
from crossdock.outbox.sqlite import SQLiteOutbox
from crossdock.pipeline import Pipeline
from crossdock.plugin_manager import plugin_manager
from crossdock.route.router import route
from crossdock.route.templates import make_environment


def rendered(template: str, fmt: str | None = None, **fields: Any) -> Any:
    shipped: dict[str, Any] = {"templates": {"t": template}}
    if fmt:
        shipped["template_format"] = {"t": fmt}
    return routed(msg(**fields), dest(shipped))["rendered"]["t"]


def render_error(template: str, **fields: Any) -> list[str]:
    d = dest({"templates": {"t": template}})
    with pytest.raises(MessageError) as info:
        route(msg(**fields), d)
    return info.value.problems


@pytest.mark.parametrize(("template", "fields", "expected"), [
    ("{{ event }} by {{ userId }}", {}, "Order Completed by u-1"),
    ("{{ properties.total }}", {"properties": {"total": 42.5}}, "42.5"),
    ("{{ type }}/{{ messageId }}/{{ timestamp }}", {}, "track/m-1/2024-05-01T12:00:00Z"),
    ("{{ context.ip }}", {"context": {"ip": "203.0.113.7"}}, "203.0.113.7"),
    ("{{ properties.coupon | default('none') }}", {}, "none"),
    ("{{ anonymousId | default('-', true) }}", {}, "-"),
    ("{{ '<a & b>' | tojson }}", {}, '"<a & b>"'),
    ("{{ properties | tojson }}", {"properties": {"é": [1, True]}}, '{"é":[1,true]}'),
    ("{{ 2.0 | stringify }}|{{ true | stringify }}", {}, "2|true"),
    ("{% if type == 'track' %}T{% else %}O{% endif %}", {}, "T"),
])
def test_templates_render_with_the_payload(template: str, fields: dict[str, Any],
                                           expected: str) -> None:
    assert rendered(template, **fields) == expected


def test_templates_see_the_mapped_payload() -> None:
    d = dest({"event_names": {"Order Completed": "purchase"},
              "keys": {"case": "snake"}, "values": {"stringify": True},
              "templates": {"t": "{{ event }} {{ properties.order_id }}"}})
    assert routed(msg(properties={"orderId": 7}), d)["rendered"]["t"] == "purchase 7"


def test_json_templates_are_stored_parsed() -> None:
    body = '{"event": {{ event | tojson }}, "total": {{ properties.total }}}'
    assert rendered(body, "json", properties={"total": 42.5}) == {
        "event": "Order Completed", "total": 42.5}


def test_a_json_template_that_renders_no_json_stays_text_for_the_plugin_to_judge() -> None:
    assert rendered('{"event": "{{ event }}', "json") == '{"event": "Order Completed'
    assert rendered("{{ event }}", "text") == "Order Completed"


@pytest.mark.parametrize(("template", "problem"), [
    ("{{ coupon }}", "mapping.templates.t: 'coupon' is undefined in this message"),
    ("{{ properties.coupon }}",
     "mapping.templates.t: 'dict object' has no attribute 'coupon' in this message"),
    ("{{ 1 // properties.zero }}",
     "mapping.templates.t: rendering failed: ZeroDivisionError: integer division or modulo "
     "by zero"),
])
def test_render_errors_name_the_template(template: str, problem: str) -> None:
    assert render_error(template, properties={"zero": 0}) == [problem]


@pytest.mark.parametrize("template", [
    "{{ ''.__class__ }}",
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ event.__init__.__globals__ }}",
    "{{ properties.update({'x': 1}) }}",   # payloads are shared between destinations
    "{{ identities.pop('userId') }}",
])
def test_the_sandbox_stops_escapes_and_mutation(template: str) -> None:
    (problem,) = render_error(template, properties={"a": 1})
    assert problem.startswith("mapping.templates.t: not allowed in the template sandbox: ")
    assert "unsafe" in problem


def test_the_prepare_jinja2_environment_hook_adjusts_the_environment() -> None:
    class Shout:
        @hookspecs.hookimpl
        def prepare_jinja2_environment(self, env: Any) -> None:
            env.filters["shout"] = lambda s: str(s).upper() + "!"

    pm = pluggy.PluginManager("crossdock")
    pm.add_hookspecs(hookspecs)
    pm.register(Shout())
    assert make_environment(pm).from_string("{{ 'hi' | shout }}").render() == "HI!"
    # The process-wide manager is the one destinations use.
    with pytest.raises(ConfigError, match="No filter named 'shout'"):
        load({"templates": {"t": "{{ event | shout }}"}})
    plugin = Shout()
    plugin_manager().register(plugin)
    try:
        assert rendered("{{ event | shout }}") == "ORDER COMPLETED!"
    finally:
        plugin_manager().unregister(plugin)


@pytest.mark.parametrize(("template", "problem"), [
    ("{{ event ", "destinations.d.mapping.templates.t: syntax error at line 1: "),
    ("ok\n{% if x %}", "destinations.d.mapping.templates.t: syntax error at line 2: "),
    ("{{ event | nosuchfilter }}",
     "destinations.d.mapping.templates.t: syntax error at line 1: No filter named "
     "'nosuchfilter'."),
])
def test_template_syntax_errors_are_config_errors(template: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        load({"templates": {"t": template}})
    assert any(p.startswith(problem) for p in info.value.problems), info.value.problems


def test_a_message_a_template_cannot_render_is_rejected_alone(tmp_path: Path) -> None:
    loaded = load(mapping={"templates": {"t": "{{ properties.total }}"}}, base_dir=tmp_path)
    outbox = SQLiteOutbox(tmp_path / "c.db")
    try:
        result = Pipeline(loaded, outbox).accept([
            {"type": "track", "userId": "u", "event": "Paid", "messageId": "good",
             "properties": {"total": 5}},
            {"type": "track", "userId": "u", "event": "Paid", "messageId": "bad"},
        ])
        assert result.accepted == ["good"]
        assert result.errors == [(1, [
            "d: mapping.templates.t: 'dict object' has no attribute 'total' in this message"])]
        stored = outbox.row("d", "good")
        assert stored is not None and stored["payload"]["rendered"] == {"t": "5"}
        assert outbox.row("d", "bad") is None
    finally:
        outbox.close()

"""Helpers of the function destination's tests: one JavaScript function whose behaviour is
chosen by the event's name, a config around it, and routed rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from crossdock.config import LoadedConfig
from crossdock.destination import OutboxItem
from crossdock.loader import parse_config
from crossdock.outbox.base import NewRow
from crossdock.plugins.function import FunctionDestination, FunctionSettings

API_KEY = "fn-secret-key-7Q2"

#: one function for every rule: what it does is chosen by the event's name
FUNCTION = """
function onEvent(event, settings, metadata) {
  const headers = {'X-Api-Key': settings.apiKey};
  const url = `${settings.endpoint}/events`;
  switch (event.event) {
    case 'throw': throw new Error('no plan for ' + metadata.messageId + ' ' + settings.apiKey);
    case 'loop': while (true) {}
    case 'huge': { const a = []; for (;;) a.push(new Array(1e6).fill(event)); }
    case 'fatal': return new Array(1e9).fill(0);
    case 'require': return require('http').request(url);
    case 'import': return import('node:net');
    case 'fetch': return fetch(url);
    case 'drop': return null;
    case 'none': return [];
    case 'undefined': return;
    case 'number': return 42;
    case 'split': return [{url, headers, body: {n: 1}},
                          {method: 'put', url: url + '/2', headers, body: 'two'}];
    case 'bad-url': return {url: 'ftp://files.example.com/x', headers};
    case 'relative-url': return {url: '/events', headers};
    case 'no-url': return {headers, body: {}};
    case 'bad-method': return {method: 'FETCH', url, headers};
    case 'secret-method': return {method: settings.apiKey, url, headers};
    case 'bad-header': return {url, headers: {...headers, 'X-Count': 3}};
    case 'header-name': return {url, headers: {...headers, 'Bad Name': 'x'}};
    case 'header-break': return {url, headers: {...headers, 'X-Note': 'a\\r\\nInjected: 1'}};
    case 'host-header': return {url, headers: {...headers, Host: 'elsewhere.example.com'}};
    case 'get-body': return {method: 'GET', url, headers, body: {a: 1}};
    case 'unknown-field': return {uri: url, headers};
    case 'second-bad': return [{url, headers, body: {}}, {url: 'nope', headers}];
    case 'unauthorized': return {url, headers: {'X-Api-Key': 'wrong'}, body: {}};
    case 'echo-secret': return {url: url + '?k=' + settings.apiKey, headers: {}, body: {}};
  }
  return {url, headers: {...headers, 'X-Source': metadata.destination},
          body: {name: event.event, user: event.userId, region: settings.region,
                 loud: shout(event.event || '')}};
}
"""
LIBRARY = "function shout(text) { return text.toUpperCase(); }"


def settings(endpoint: str, **extra: Any) -> dict[str, Any]:
    return {"file": "fn/crm.js", "libraries": ["shout"],
            "values": {"endpoint": endpoint, "region": "eu"},
            "secrets": {"apiKey": API_KEY}, **extra}


def loaded_with(tmp_path: Path, endpoint: str, *, function: str = FUNCTION,
                private: bool = True, **destination: Any) -> LoadedConfig:
    """A config with the `crm` function destination sending to `endpoint`."""
    (tmp_path / "fn").mkdir(exist_ok=True)
    (tmp_path / "fn" / "crm.js").write_text(function)
    (tmp_path / "fn" / "shout.js").write_text(LIBRARY)
    raw = {
        "outbox": {"url": f"sqlite:///{tmp_path / 'crossdock.db'}"},
        "collector": {"enabled": False},
        "functions": {"libraries": {"shout": {"file": "fn/shout.js"}}, "timeout": "2s",
                      "memory_mb": 16},
        "destinations": {"crm": {
            "plugin": "function", "settings": settings(endpoint),
            "delivery": {"allow_private_network": private, "backoff_base": 0.01,
                         "backoff_max": 0.1}, **destination}},
    }
    return parse_config(raw, base_dir=tmp_path, env={})


def row(message_id: str, name: str, **fields: Any) -> NewRow:
    """A routed track of `name` for the crm destination."""
    return NewRow("crm", message_id, {"type": "track", "messageId": message_id,
                                      "event": name, "userId": "u1", "properties": {},
                                      **fields})


def plugin(endpoint: str = "http://127.0.0.1:9") -> FunctionDestination:
    """The plugin with the function inline (its library's code first), as the conformance
    suite and the cassettes run it without a config."""
    inline = {**settings(endpoint), "code": LIBRARY + FUNCTION, "libraries": []}
    del inline["file"]
    return FunctionDestination(FunctionSettings.model_validate(inline), {})


def request_item(value: dict[str, Any], n: int = 1) -> OutboxItem:
    """An item carrying what a function returned (what build_requests gets)."""
    return OutboxItem(n, f"msg-{n}", value)

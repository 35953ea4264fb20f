"""The function destination: the operator's JavaScript says what to send, the engine sends it.

    destinations:
      crm:
        plugin: function
        settings:
          file: functions/crm.js
          values: {endpoint: "https://crm.example.com/api/events"}
          secrets: {apiKey: "${CRM_API_KEY}"}

    // functions/crm.js
    function onEvent(event, settings, metadata) {
      if (event.type !== 'track') return null;              // nothing to send
      return {method: 'POST', url: settings.endpoint,
              headers: {'x-api-key': settings.apiKey},
              body: {name: event.event, user: event.userId, at: event.timestamp}};
    }

The plugin describes the function (`script()`); the engine runs it in the function process
with its time and memory limits, before this plugin, and hands each request it returns to
`build_requests` as one item's payload (crossdock.delivery.transform.FunctionStep). Here
each is checked (method, url, headers, body: a rule broken is a dead letter naming the field)
and built; the engine sends it through its egress guard as any destination's, and the answer
is read by the function's `classify(response, settings, metadata)` when it has one (the
engine runs it), else the usual way (2xx delivered, 408/425/429/5xx retried, any other dead).
"""

from __future__ import annotations

import difflib
from typing import Any

import httpx

from crossdock.destination import (
    ALL_MESSAGE_TYPES,
    Destination,
    Failed,
    ItemRejected,
    Manifest,
    OutboxItem,
    Outcome,
    PlannedRequest,
    Retry,
    Script,
    http_outcome,
    json_content,
)
from crossdock.plugins.function.const import (
    CLASSIFY,
    DEFAULT_METHOD,
    ENGINE_HEADERS,
    ENTRY,
    HEADER_NAME,
    HEADER_VALUE_FORBIDDEN,
    JSON_CONTENT_TYPE,
    METHODS,
    NO_BODY,
    PLUGIN_NAME,
    REQUEST_FIELDS,
    TEXT_CONTENT_TYPE,
)
from crossdock.plugins.function.settings import FunctionSettings


class FunctionDestination(Destination[FunctionSettings]):
    manifest = Manifest(
        name=PLUGIN_NAME, docs_url="docs/destinations/function.md",
        description="your JavaScript onEvent(event, settings) returns the requests to send "
                    "(as Segment's destination functions)",
        # every type, group calls included: the function decides what each becomes
        message_types=ALL_MESSAGE_TYPES)

    def script(self) -> Script:
        s = self.settings
        return Script(ENTRY, file=s.file, code=s.code, libraries=tuple(s.libraries),
                      settings={**s.values, **s.secrets}, classify=CLASSIFY)

    def build_item(self, item: OutboxItem) -> PlannedRequest:
        """One request the function returned (the item's payload), checked and built."""
        try:
            request = build_request(item.payload)
        except ItemRejected as exc:  # a method or header name may be a secret's value
            raise ItemRejected(self._hidden(exc.reason)) from None
        # Requests to one host share a rate limit (delivery.rate_limit), whatever path.
        return PlannedRequest(request, [item], f"{PLUGIN_NAME}:{request.url.host}")

    def classify(self, planned: PlannedRequest, response: httpx.Response) -> Outcome:
        outcome = http_outcome(response)
        if isinstance(outcome, Failed):
            return Failed(self._hidden(outcome.reason))
        if isinstance(outcome, Retry):
            return Retry(self._hidden(outcome.reason), outcome.after)
        return outcome

    def _hidden(self, text: str) -> str:
        """A reason without the settings' secrets (an endpoint may echo a header back)."""
        for secret in sorted((s.get_secret_value() for s in self.settings.secrets.values()),
                             key=len, reverse=True):
            text = text.replace(secret, "<secret>")
        return text


def build_request(value: dict[str, Any]) -> httpx.Request:
    """An httpx.Request from what the function returned; ItemRejected naming the field and
    the rule it breaks. Reasons never quote a value (it may hold a secret)."""
    for key in value:
        if key not in REQUEST_FIELDS:
            close = difflib.get_close_matches(key, REQUEST_FIELDS, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ItemRejected(f"request.{key}: unknown field{hint}; a request has "
                               f"{', '.join(REQUEST_FIELDS)}")
    method = _method(value.get("method", DEFAULT_METHOD))
    url = _url(value.get("url"))
    headers = _headers(value.get("headers"))
    names = {name.lower() for name in headers}
    body = value.get("body")
    content: bytes | None = None
    if body is not None:
        if method in NO_BODY:
            raise ItemRejected(f"request.body: a {method} request carries no body (send it "
                               "with POST, PUT or PATCH, or put the values in the url)")
        if isinstance(body, str):
            content = body.encode()
            default_type = TEXT_CONTENT_TYPE
        else:
            content = json_content(body)
            default_type = JSON_CONTENT_TYPE
        if "content-type" not in names:
            headers["content-type"] = default_type
    return httpx.Request(method, url, headers=headers, content=content)


def _method(method: Any) -> str:
    if not isinstance(method, str) or method.upper() not in METHODS:
        got = repr(method[:20]) if isinstance(method, str) else _kind(method)
        raise ItemRejected(f"request.method: must be one of {', '.join(sorted(METHODS))} "
                           f"(got {got})")
    return method.upper()


def _url(url: Any) -> httpx.URL:
    if not isinstance(url, str) or not url:
        raise ItemRejected(f"request.url: required, an absolute http or https URL (got "
                           f"{_kind(url)})")
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise ItemRejected("request.url: must not hold spaces or control characters "
                           "(encode them: encodeURIComponent)")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise ItemRejected(f"request.url: not a URL ({exc})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ItemRejected("request.url: must be an absolute http or https URL "
                           "(https://host/path)")
    return parsed


def _headers(headers: Any) -> dict[str, str]:
    if headers is None:
        return {}
    if not isinstance(headers, dict):
        raise ItemRejected(f"request.headers: must be an object of name: string value (got "
                           f"{_kind(headers)})")
    out: dict[str, str] = {}
    for name, value in headers.items():
        if not HEADER_NAME.match(name):
            raise ItemRejected("request.headers: a header name is letters, digits and "
                               "!#$%&'*+.^_`|~- (no spaces, no colon)")
        if name.lower() in ENGINE_HEADERS:
            raise ItemRejected(f"request.headers.{name}: set by the engine from the request "
                               "itself; leave it out")
        if not isinstance(value, str):
            raise ItemRejected(f"request.headers.{name}: must be a string (got "
                               f"{_kind(value)}; use String(value))")
        if HEADER_VALUE_FORBIDDEN.search(value):
            raise ItemRejected(f"request.headers.{name}: must not hold a line break or NUL")
        out[name] = value
    return out


#: a JSON value's kind as a reason names it (bool before int: True is an int in Python)
_KINDS: tuple[tuple[type | tuple[type, ...], str], ...] = (
    (bool, "a boolean"), ((int, float), "a number"), (str, "a string"), (list, "a list"),
    (dict, "an object"))


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    return next((name for kinds, name in _KINDS if isinstance(value, kinds)), "a value")

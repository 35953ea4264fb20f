"""Step 3 of a message's way: route it to one destination.

    filter (filtering.py) -> rules (rules.py) -> normalize (normalize.py) -> map (mapping.py,
    templates.py), driven by the destination's merged mapping (mapping_spec.py).

`route(enriched, destination)` returns the *routed payload* stored in the outbox row, or a
`Skip` saying why the message does not go to that destination (reasons in docs/filters.md). A
template that cannot render raises MessageError naming it ("mapping.templates.text: ...").
The payload is a plain JSON dict, the input every plugin's `build_requests` reads; treat it
as read-only (destinations may share its inner objects). Plugin authors read it described in
docs/plugin-reference.md (a test checks that page names every key):

    {
      "type": "track" | "identify" | "page" | "screen" | "alias" | "group",
      "messageId": str, "timestamp": ISO-8601 str,
      "sentAt", "receivedAt", "originalTimestamp": ISO-8601 str,  # only when the message
                                         # has them (the collector's clock fields)
      "userId": str | None, "anonymousId": str | None, "sessionId": str | None,
      "sessionStart": ISO-8601 str,      # only when the profile store knows the session:
                                         # when it started
      "profileId": str | None,           # Crossdock's own person id
      "event": str | None,               # track (after the event-name map); page/screen: name
                                         # (an unnamed one: "page" / "screen"); else None
      "name": str | None,                # page / screen name, as received
      "properties": {str: value},        # event attributes: filtered, normalized, limited
      "traits": {str: value},            # user attributes: filtered, normalized, reserved-mapped
      "identities": {str: str},          # identities that passed the filter (+ mapping's always)
      "context": {str: value},           # the message's context, as received
      "rendered": {str: Any},            # each mapping template, rendered (json ones parsed)
      "dropped": {"event_attributes": int, "user_attributes": int},
      "truncated": int,                  # string values cut to limits.string_length
      "previousId": str,                 # alias only
      "category": str,                   # page / screen, only when sent
      "groupId": str,                    # group only
      "groupTraits": {str: value},       # group only: the group's traits, shaped as properties
      "consent": {str: bool},            # only for a mapping naming `consent` purposes: each
                                         # one granted or not, as the forwarding rules see it
    }

Mapping reference: docs/mappings.md. Filters and rules: docs/filters.md.
"""

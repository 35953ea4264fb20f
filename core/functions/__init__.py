"""Operator JavaScript: transformations run by the engine (docs/functions.md).

    runtime.py  the V8 isolates (mini-racer) in a host process of their own (host.py), with
                a time and a memory limit and nothing but the language
    config.py   the `functions:` entry (limits, shared libraries) and a destination's
                `transform:`
    events.py   what a transformEvent's answer means: the event, dropped, or a list
    cli.py      `crossdock functions test FILE message.json`

Where it runs in a message's way: crossdock.delivery.transform, between the outbox lease and
the plugin's build_requests (docs/functions.md says why there).
"""

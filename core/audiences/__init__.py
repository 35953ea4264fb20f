"""Audiences: people whose profile attributes meet a condition, kept in sync with
destinations (docs/audiences.md).

    spec.py        the config model and the compiled, sandboxed condition
    membership.py  who is in each audience (table audience_members) and what changes
    sync.py        full and on-change syncs routing audience_entered / audience_exited
    cli.py         `crossdock audiences list | preview | sync`

Only spec names are imported here: crossdock.config imports this package.
"""

from crossdock.audiences.spec import (
    AUDIENCE_ENTERED,
    AUDIENCE_EXITED,
    Audience,
    AudienceConfig,
    audiences_of,
)

__all__ = ["AUDIENCE_ENTERED", "AUDIENCE_EXITED", "Audience", "AudienceConfig", "audiences_of"]

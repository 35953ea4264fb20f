"""Consent purposes: from opt-in attributes and from a message's `context.consent`.

A profile keeps, per purpose, whether it is granted and when that was last said. Opt-ins map
to the purposes `email`, `sms` and `whatsapp`; `context.consent` may be Segment's
`{"categoryPreferences": {"marketing": true, "ads": false}}`, a plain `{purpose: bool}` mapping
or a list of granted purposes. A purpose never mentioned is not granted.
"""

from __future__ import annotations

from typing import Any

OPT_IN_PURPOSES = {"emailOptIn": "email", "smsOptIn": "sms", "whatsappOptIn": "whatsapp"}


def consent_changes(context: dict[str, Any], system_attributes: dict[str, Any]) -> dict[str, bool]:
    """Purpose -> granted, for every purpose this message says something about."""
    changes: dict[str, bool] = {}
    consent = context.get("consent")
    if isinstance(consent, dict):
        prefs = consent.get("categoryPreferences", consent)
        if isinstance(prefs, dict):
            changes.update({str(k): v for k, v in prefs.items() if isinstance(v, bool)})
    elif isinstance(consent, list):
        changes.update({str(p): True for p in consent if isinstance(p, str | int)})
    for attribute, purpose in OPT_IN_PURPOSES.items():
        value = system_attributes.get(attribute)
        if isinstance(value, bool):
            changes[purpose] = value
    return changes

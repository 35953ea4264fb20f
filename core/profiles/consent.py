"""Consent purposes: from opt-in attributes and from a message's `context.consent`.

A profile keeps, per purpose, whether it is granted and when that was last said. Opt-ins map
to the purposes `email`, `sms` and `whatsapp`; `context.consent` may be Segment's
`{"categoryPreferences": {"marketing": true, "ads": false}}`, a plain `{purpose: bool}` mapping
or a list of granted purposes. A purpose the person never said anything about takes its
default (`profiles.consent_defaults`: email and SMS on, WhatsApp off, others off); an opt-in
sent as `null` is forgotten, so the default applies again.
"""

from __future__ import annotations

from typing import Any

from crossdock.profiles.attributes import split_traits

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


def consent_resets(system_attributes: dict[str, Any]) -> list[str]:
    """Purposes whose opt-in this message removes (sent as null): back to their default."""
    return [purpose for attribute, purpose in OPT_IN_PURPOSES.items()
            if attribute in system_attributes and system_attributes[attribute] is None]


def granted(stated: dict[str, bool], defaults: dict[str, bool]) -> set[str]:
    """The granted purposes of a person who said `stated` (purpose -> granted): what they
    said, and the defaults of every purpose they never mentioned."""
    found = {purpose for purpose, on in stated.items() if on}
    found.update(purpose for purpose, on in defaults.items() if on and purpose not in stated)
    return found


def message_consent(context: dict[str, Any], traits: dict[str, Any],
                    defaults: dict[str, bool]) -> set[str]:
    """The purposes a message alone grants (no profile store): its opt-in traits and
    `context.consent`, and the defaults of the purposes it says nothing about."""
    return granted(consent_changes(context, split_traits(traits)[0]), defaults)

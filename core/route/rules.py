"""Forwarding rules: who may be sent at all (identified people only, granted consent, people
holding what the destination addresses them by)."""

from __future__ import annotations

from dataclasses import dataclass

from crossdock.config import RulesConfig
from crossdock.models import EnrichedMessage
from crossdock.route.mapping_spec import RulesSpec


@dataclass(frozen=True)
class Rules:
    only_identified: bool
    require_consent: tuple[str, ...]
    require_attributes: tuple[str, ...] = ()

    @classmethod
    def merge(cls, mapping: RulesSpec, operator: RulesConfig) -> Rules:
        """The mapping's defaults, overridden by the operator's `rules:` where set."""
        only = mapping.only_identified if operator.only_identified is None else (
            operator.only_identified)
        consent = tuple(dict.fromkeys([*mapping.require_consent, *operator.require_consent]))
        needed = tuple(dict.fromkeys([*mapping.require_attributes,
                                      *operator.require_attributes]))
        return cls(only, consent, needed)

    def __bool__(self) -> bool:
        """False when there is nothing to check."""
        return self.only_identified or bool(self.require_consent or self.require_attributes)

    def refusal(self, enriched: EnrichedMessage) -> str | None:
        """Why this message may not be forwarded, or None when it may."""
        if self.only_identified and not enriched.identified:
            return "rule: only identified users"
        for purpose in self.require_consent:
            if purpose not in enriched.consent:
                return f"rule: consent {purpose!r} missing"
        for name in self.require_attributes:
            # A person without the phone an SMS goes to is not a delivery failure: the
            # message is skipped and counted, like a missing consent.
            if enriched.user_attributes.get(name) in (None, "") and not enriched.identities.get(
                    name):
                return f"rule: attribute {name!r} missing"
        return None

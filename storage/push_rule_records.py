"""The stored form of a user's push rules: plain records, read and written by
``storage.push_rules`` and interpreted by ``homeserver.push.rules`` (which knows what
the kinds, conditions and actions mean; the store does not)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class UserRule:
    """A user-defined rule as stored; ``rules`` of a user are kept in priority order."""

    kind: str
    rule_id: str
    actions: list[Any]
    conditions: list[Any] | None = None
    pattern: str | None = None
    enabled: bool = True


@dataclass(frozen=True, slots=True)
class DefaultRuleOverride:
    """A user's change to a server-default rule (its enabled flag and/or actions)."""

    enabled: bool | None = None
    actions: list[Any] | None = None


@dataclass(frozen=True, slots=True)
class UserPushRules:
    """Everything a user changed: their own rules, and changes to default rules."""

    rules: tuple[UserRule, ...] = ()
    default_overrides: Mapping[str, DefaultRuleOverride] = field(default_factory=dict)

    @property
    def is_default(self) -> bool:
        return not self.rules and not self.default_overrides

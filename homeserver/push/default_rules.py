"""The server-default push rules (client-server API: Push Rules, "Predefined Rules"). PURE.

``SPEC_DEFAULTS`` are exactly the rules of the spec copy this server implements, in
its order. That copy (v1.17) removed the legacy body-mention rules
``.m.rule.contains_display_name``, ``.m.rule.roomnotif`` and
``.m.rule.contains_user_name``; the ``contains_display_name`` condition is still
understood for user-defined rules. ``WITH_LEGACY_MENTIONS`` (the default) adds those three back,
where the spec before v1.17 placed them, for servers whose users' clients do not
send ``m.mentions`` yet (``push.legacy_mention_rules``; Synapse has them unless its
``msc4210_enabled``). As in Synapse, they never apply to an event that has an
``m.mentions`` property (the evaluator adds that condition; it is not shown).
``[the user's Matrix ID]`` and ``[the user's localpart]`` stand for the recipient
and are resolved at evaluation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.push.conditions import USER_ID_PLACEHOLDER, USER_LOCALPART_PLACEHOLDER

_SOUND_DEFAULT = {"set_tweak": "sound", "value": "default"}
_HIGHLIGHT = {"set_tweak": "highlight"}


def _rule(
    rule_id: str, conditions: list[dict[str, Any]], actions: list[Any], *, enabled: bool = True
) -> dict[str, Any]:
    return {
        "rule_id": rule_id,
        "default": True,
        "enabled": enabled,
        "conditions": conditions,
        "actions": actions,
    }


def _match(key: str, pattern: str) -> dict[str, Any]:
    return {"kind": "event_match", "key": key, "pattern": pattern}


DEFAULT_OVERRIDE_RULES: tuple[dict[str, Any], ...] = (
    _rule(".m.rule.master", [], [], enabled=False),
    _rule(".m.rule.suppress_notices", [_match("content.msgtype", "m.notice")], []),
    _rule(
        ".m.rule.invite_for_me",
        [
            _match("type", "m.room.member"),
            _match("content.membership", "invite"),
            _match("state_key", USER_ID_PLACEHOLDER),
        ],
        ["notify", _SOUND_DEFAULT],
    ),
    _rule(".m.rule.member_event", [_match("type", "m.room.member")], []),
    _rule(
        ".m.rule.is_user_mention",
        [
            {
                "kind": "event_property_contains",
                "key": "content.m\\.mentions.user_ids",
                "value": USER_ID_PLACEHOLDER,
            }
        ],
        ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
    ),
    _rule(
        ".m.rule.is_room_mention",
        [
            {"kind": "event_property_is", "key": "content.m\\.mentions.room", "value": True},
            {"kind": "sender_notification_permission", "key": "room"},
        ],
        ["notify", _HIGHLIGHT],
    ),
    _rule(
        ".m.rule.tombstone",
        [_match("type", "m.room.tombstone"), _match("state_key", "")],
        ["notify", _HIGHLIGHT],
    ),
    _rule(".m.rule.reaction", [_match("type", "m.reaction")], []),
    _rule(
        ".m.rule.room.server_acl",
        [_match("type", "m.room.server_acl"), _match("state_key", "")],
        [],
    ),
    _rule(
        ".m.rule.suppress_edits",
        [
            {
                "kind": "event_property_is",
                "key": "content.m\\.relates_to.rel_type",
                "value": "m.replace",
            }
        ],
        [],
    ),
)

DEFAULT_CONTENT_RULES: tuple[dict[str, Any], ...] = ()

DEFAULT_UNDERRIDE_RULES: tuple[dict[str, Any], ...] = (
    _rule(
        ".m.rule.call",
        [_match("type", "m.call.invite")],
        ["notify", {"set_tweak": "sound", "value": "ring"}],
    ),
    _rule(
        ".m.rule.encrypted_room_one_to_one",
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.encrypted")],
        ["notify", _SOUND_DEFAULT],
    ),
    _rule(
        ".m.rule.room_one_to_one",
        [{"kind": "room_member_count", "is": "2"}, _match("type", "m.room.message")],
        ["notify", _SOUND_DEFAULT],
    ),
    _rule(".m.rule.message", [_match("type", "m.room.message")], ["notify"]),
    _rule(".m.rule.encrypted", [_match("type", "m.room.encrypted")], ["notify"]),
)

MASTER_RULE_ID = ".m.rule.master"

# The legacy body-mention rules (spec before v1.17), each placed after the rule it
# followed there; none applies to an event with an ``m.mentions`` property.
CONTAINS_DISPLAY_NAME = _rule(
    ".m.rule.contains_display_name",
    [{"kind": "contains_display_name"}],
    ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
)
ROOMNOTIF = _rule(
    ".m.rule.roomnotif",
    [_match("content.body", "@room"), {"kind": "sender_notification_permission", "key": "room"}],
    ["notify", _HIGHLIGHT],
)
CONTAINS_USER_NAME: dict[str, Any] = {
    "rule_id": ".m.rule.contains_user_name",
    "default": True,
    "enabled": True,
    "pattern": USER_LOCALPART_PLACEHOLDER,
    "actions": ["notify", _SOUND_DEFAULT, _HIGHLIGHT],
}
LEGACY_MENTION_RULE_IDS = frozenset(
    r["rule_id"] for r in (CONTAINS_DISPLAY_NAME, ROOMNOTIF, CONTAINS_USER_NAME)
)


def _with_legacy_overrides() -> tuple[dict[str, Any], ...]:
    placed: list[dict[str, Any]] = []
    for rule in DEFAULT_OVERRIDE_RULES:
        placed.append(rule)
        if rule["rule_id"] == ".m.rule.is_user_mention":
            placed.append(CONTAINS_DISPLAY_NAME)
        elif rule["rule_id"] == ".m.rule.is_room_mention":
            placed.append(ROOMNOTIF)
    return tuple(placed)


@dataclass(frozen=True, eq=False)
class DefaultRules:
    """A set of server-default rules: by kind in evaluation order, and by rule ID
    (rule_id -> (kind, rule)). Compared by identity (compiled forms are cached per set)."""

    by_kind: dict[str, tuple[dict[str, Any], ...]]
    by_id: dict[str, tuple[str, dict[str, Any]]]

    @classmethod
    def of(cls, by_kind: dict[str, tuple[dict[str, Any], ...]]) -> DefaultRules:
        by_id = {rule["rule_id"]: (kind, rule) for kind, rules in by_kind.items() for rule in rules}
        return cls(by_kind, by_id)


SPEC_DEFAULTS = DefaultRules.of(
    {
        "override": DEFAULT_OVERRIDE_RULES,
        "content": DEFAULT_CONTENT_RULES,
        "room": (),
        "sender": (),
        "underride": DEFAULT_UNDERRIDE_RULES,
    }
)
WITH_LEGACY_MENTIONS = DefaultRules.of(
    {
        "override": _with_legacy_overrides(),
        "content": (*DEFAULT_CONTENT_RULES, CONTAINS_USER_NAME),
        "room": (),
        "sender": (),
        "underride": DEFAULT_UNDERRIDE_RULES,
    }
)

DEFAULT_RULES_BY_KIND = SPEC_DEFAULTS.by_kind
DEFAULT_RULES = SPEC_DEFAULTS.by_id


def default_rules(legacy_mention_rules: bool) -> DefaultRules:
    return WITH_LEGACY_MENTIONS if legacy_mention_rules else SPEC_DEFAULTS


def localpart_of(user_id: str) -> str:
    return user_id[1:].split(":", 1)[0]


def rule_for_user(rule: dict[str, Any], user_id: str) -> dict[str, Any]:
    """A default rule as shown to ``user_id`` (placeholders replaced by their ID or
    localpart)."""
    if "pattern" in rule:  # a content rule
        pattern = rule["pattern"]
        return {
            **rule,
            "pattern": localpart_of(user_id) if pattern == USER_LOCALPART_PLACEHOLDER else pattern,
        }
    conditions = [
        {k: (user_id if v == USER_ID_PLACEHOLDER else v) for k, v in c.items()}
        for c in rule["conditions"]
    ]
    return {**rule, "conditions": conditions}

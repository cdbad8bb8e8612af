"""The server-default push rules (client-server API: Push Rules, "Predefined Rules"). PURE.

Exactly the rules of the spec copy this server implements, in its order. That copy
(v1.17) removed the legacy body-mention rules ``.m.rule.contains_display_name``,
``.m.rule.roomnotif`` and ``.m.rule.contains_user_name``; the
``contains_display_name`` condition is still understood for user-defined rules.
``[the user's Matrix ID]`` stands for the recipient and is resolved at evaluation.
"""

from __future__ import annotations

from typing import Any

from homeserver.push.conditions import USER_ID_PLACEHOLDER

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

DEFAULT_RULES_BY_KIND: dict[str, tuple[dict[str, Any], ...]] = {
    "override": DEFAULT_OVERRIDE_RULES,
    "content": DEFAULT_CONTENT_RULES,
    "room": (),
    "sender": (),
    "underride": DEFAULT_UNDERRIDE_RULES,
}

# rule_id -> (kind, rule)
DEFAULT_RULES: dict[str, tuple[str, dict[str, Any]]] = {
    rule["rule_id"]: (kind, rule) for kind, rules in DEFAULT_RULES_BY_KIND.items() for rule in rules
}


def rule_for_user(rule: dict[str, Any], user_id: str) -> dict[str, Any]:
    """A default rule as shown to ``user_id`` (the placeholder replaced by their ID)."""
    conditions = [
        {k: (user_id if v == USER_ID_PLACEHOLDER else v) for k, v in c.items()}
        for c in rule["conditions"]
    ]
    return {**rule, "conditions": conditions}

"""Pure push rule evaluation: every default rule and every condition kind."""

from __future__ import annotations

from typing import Any

import pytest

from homeserver.errors import MatrixError
from homeserver.push.conditions import (
    MessageContext,
    Recipient,
    compile_condition,
    glob_matches,
    split_path,
)
from homeserver.push.default_rules import (
    DEFAULT_RULES_BY_KIND,
    LEGACY_MENTION_RULE_IDS,
    WITH_LEGACY_MENTIONS,
)
from homeserver.push.rules import (
    DefaultRuleOverride,
    UserPushRules,
    UserRule,
    compile_ruleset,
    default_ruleset,
    parse_actions,
    parse_conditions,
    place_rule,
    ruleset_json,
    tweaks_of,
)

ALICE = "@alice:test.local"
BOB = "@bob:test.local"
ROOM = "!room:test.local"


def message(
    event_type: str = "m.room.message",
    content: dict[str, Any] | None = None,
    *,
    members: int = 3,
    sender: str = BOB,
    state_key: str | None = None,
    sender_level: float = 0,
    levels: dict[str, int] | None = None,
) -> MessageContext:
    event: dict[str, Any] = {
        "type": event_type,
        "sender": sender,
        "room_id": ROOM,
        "event_id": "$e",
        "content": content if content is not None else {"msgtype": "m.text", "body": "hi"},
    }
    if state_key is not None:
        event["state_key"] = state_key
    return MessageContext.of(
        event,
        room_member_count=members,
        sender_power_level=sender_level,
        notification_levels=levels,
    )


def rule_id(
    ctx: MessageContext, rules: UserPushRules | None = None, name: str | None = None
) -> str | None:
    ruleset = compile_ruleset(rules or UserPushRules())
    rule = ruleset.evaluate(ctx, Recipient(ALICE, name))
    return rule.rule_id if rule is not None else None


def matches(condition: dict[str, Any], ctx: MessageContext, name: str | None = None) -> bool:
    return compile_condition(condition).matches(ctx, Recipient(ALICE, name))


# -- paths and globs ------------------------------------------------------------------------


def test_split_path_escapes() -> None:
    assert split_path("content.body") == ("content", "body")
    assert split_path("content.m\\.relates_to.rel_type") == ("content", "m.relates_to", "rel_type")
    assert split_path("content.m\\\\foo") == ("content", "m\\foo")
    assert split_path("content.m\\x") == ("content", "m\\x")
    assert split_path("a..b") == ("a", "", "b")


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("lunc?*", "Lunch plans", True),
        ("lunc?*", "LUNCH", True),
        ("lunc?*", " lunch", False),
        ("lunc?*", "lunc", False),
        ("m.notice", "m.notice", True),
        ("m.notice", "m.noticeX", False),
        ("m.*", "m.room.message", True),
        ("a.c", "abc", False),  # dots are literal
    ],
)
def test_glob_whole_value(pattern: str, value: str, expected: bool) -> None:
    assert glob_matches(pattern, value) is expected


@pytest.mark.parametrize(
    ("pattern", "body", "expected"),
    [
        ("ex*ple", "An example event.", True),
        ("ex*ple", "exple", True),
        ("ex*ple", "An exciting triple-whammy", True),
        ("cake", "I like cake!", True),
        ("cake", "I like cakes", False),
        ("cake", "pancake", False),
        ("cake", "CAKE", True),
        ("cake", "snake_cake", False),  # _ is a word character
        ("cake", "caf\u00e9cake", True),  # é is not in [A-Za-z0-9_]
        ("c?ke", "a coke b", True),
    ],
)
def test_glob_body_word_boundaries(pattern: str, body: str, expected: bool) -> None:
    assert glob_matches(pattern, body, word_boundary=True) is expected
    ctx = message(content={"body": body})
    assert (
        matches({"kind": "event_match", "key": "content.body", "pattern": pattern}, ctx) is expected
    )


# -- conditions --------------------------------------------------------------------------------


def test_event_match_needs_a_string() -> None:
    ctx = message(content={"topic": None, "n": 1, "body": "x"})
    for key in ("content.topic", "content.n", "content.absent"):
        assert not matches({"kind": "event_match", "key": key, "pattern": "*"}, ctx)
    assert matches({"kind": "event_match", "key": "type", "pattern": "m.room.*"}, ctx)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, True), ("true", False), (1, False), (None, False)],
)
def test_event_property_is_without_casts(value: Any, expected: bool) -> None:
    ctx = message("m.room.create", {"m.federate": True})
    condition = {"kind": "event_property_is", "key": "content.m\\.federate", "value": value}
    assert matches(condition, ctx) is expected


def test_event_property_is_null_int_and_absent() -> None:
    ctx = message(content={"a": None, "n": 5, "b": False, "o": {"x": 1}})
    assert matches({"kind": "event_property_is", "key": "content.a", "value": None}, ctx)
    assert not matches({"kind": "event_property_is", "key": "content.missing", "value": None}, ctx)
    assert matches({"kind": "event_property_is", "key": "content.n", "value": 5}, ctx)
    assert not matches({"kind": "event_property_is", "key": "content.n", "value": 5.0}, ctx)
    assert not matches({"kind": "event_property_is", "key": "content.b", "value": 0}, ctx)
    assert matches({"kind": "event_property_is", "key": "content.b", "value": False}, ctx)
    assert not matches({"kind": "event_property_is", "key": "content.o", "value": None}, ctx)
    assert matches({"kind": "event_property_is", "key": "content.o.x", "value": 1}, ctx)


def test_event_property_contains() -> None:
    ctx = message(
        "m.room.canonical_alias",
        {"alt_aliases": ["#somewhere:example.org", "#myroom:example.com", 3, True, None, [1]]},
    )
    cond = {"kind": "event_property_contains", "key": "content.alt_aliases"}
    assert matches({**cond, "value": "#myroom:example.com"}, ctx)
    assert not matches({**cond, "value": ":example.com"}, ctx)
    assert matches({**cond, "value": 3}, ctx)
    assert matches({**cond, "value": True}, ctx)
    assert not matches({**cond, "value": 1}, ctx)  # True is not 1
    assert matches({**cond, "value": None}, ctx)
    not_array = message(content={"alt_aliases": "#myroom:example.com"})
    assert not matches({**cond, "value": "#myroom:example.com"}, not_array)


def test_contains_display_name() -> None:
    cond = {"kind": "contains_display_name"}
    assert matches(cond, message(content={"body": "hey Alice Smith, hi"}), "Alice Smith")
    assert matches(cond, message(content={"body": "alice smith!"}), "Alice Smith")
    assert not matches(cond, message(content={"body": "Alice Smithers"}), "Alice Smith")
    assert not matches(cond, message(content={"body": "hello"}), None)
    assert not matches(cond, message(content={"msgtype": "m.text"}), "Alice")


@pytest.mark.parametrize(
    ("spec", "count", "expected"),
    [
        ("2", 2, True),
        ("==2", 3, False),
        ("<3", 2, True),
        ("<3", 3, False),
        (">3", 4, True),
        (">=3", 3, True),
        ("<=10", 11, False),
        ("<=10", 10, True),
        ("abc", 2, False),
        ("=2", 2, False),
    ],
)
def test_room_member_count(spec: str, count: int, expected: bool) -> None:
    assert matches({"kind": "room_member_count", "is": spec}, message(members=count)) is expected


def test_sender_notification_permission() -> None:
    cond = {"kind": "sender_notification_permission", "key": "room"}
    assert not matches(cond, message(sender_level=0))
    assert matches(cond, message(sender_level=50))
    assert matches(cond, message(sender_level=10, levels={"room": 10}))
    assert not matches(cond, message(sender_level=10, levels={"room": 20}))
    assert matches(cond, message(sender_level=float("inf")))


def test_unknown_or_malformed_conditions_never_match() -> None:
    ctx = message()
    assert not matches({"kind": "org.example.unknown"}, ctx)
    assert not matches({"kind": "event_match", "key": "type"}, ctx)
    assert not matches({"kind": "event_property_is", "key": "type", "value": [1]}, ctx)
    rules = UserPushRules((UserRule("override", "x", ["notify"], [{"kind": "nope"}]),), {})
    assert rule_id(message("m.custom", {}), rules) is None


# -- default rules --------------------------------------------------------------------------------


def test_default_rule_ids_and_order() -> None:
    assert [r["rule_id"] for r in DEFAULT_RULES_BY_KIND["override"]] == [
        ".m.rule.master",
        ".m.rule.suppress_notices",
        ".m.rule.invite_for_me",
        ".m.rule.member_event",
        ".m.rule.is_user_mention",
        ".m.rule.is_room_mention",
        ".m.rule.tombstone",
        ".m.rule.reaction",
        ".m.rule.room.server_acl",
        ".m.rule.suppress_edits",
    ]
    assert [r["rule_id"] for r in DEFAULT_RULES_BY_KIND["underride"]] == [
        ".m.rule.call",
        ".m.rule.encrypted_room_one_to_one",
        ".m.rule.room_one_to_one",
        ".m.rule.message",
        ".m.rule.encrypted",
    ]


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [
        (message(content={"msgtype": "m.notice", "body": "bot"}), ".m.rule.suppress_notices"),
        (
            message("m.room.member", {"membership": "invite"}, state_key=ALICE),
            ".m.rule.invite_for_me",
        ),
        (message("m.room.member", {"membership": "invite"}, state_key=BOB), ".m.rule.member_event"),
        (message("m.room.member", {"membership": "join"}, state_key=BOB), ".m.rule.member_event"),
        (
            message(content={"body": "hey", "m.mentions": {"user_ids": [ALICE]}}),
            ".m.rule.is_user_mention",
        ),
        (
            message(content={"body": "@room", "m.mentions": {"room": True}}, sender_level=50),
            ".m.rule.is_room_mention",
        ),
        (
            message(content={"body": "@room", "m.mentions": {"room": True}}, sender_level=0),
            ".m.rule.message",
        ),
        (
            message("m.room.tombstone", {"body": "moved"}, state_key=""),
            ".m.rule.tombstone",
        ),
        (message("m.room.tombstone", {}, state_key="x"), None),
        (message("m.reaction", {}), ".m.rule.reaction"),
        (message("m.room.server_acl", {}, state_key=""), ".m.rule.room.server_acl"),
        (
            message(content={"body": "* fix", "m.relates_to": {"rel_type": "m.replace"}}),
            ".m.rule.suppress_edits",
        ),
        (message("m.call.invite", {}), ".m.rule.call"),
        (message("m.room.encrypted", {}, members=2), ".m.rule.encrypted_room_one_to_one"),
        (message(members=2), ".m.rule.room_one_to_one"),
        (message(members=3), ".m.rule.message"),
        (message("m.room.encrypted", {}, members=3), ".m.rule.encrypted"),
        (message("m.room.topic", {"topic": "x"}, state_key=""), None),
        # legacy body mentions are gone from this spec's defaults
        (message(content={"body": "alice: @room"}, members=5), ".m.rule.message"),
    ],
)
def test_default_rules(ctx: MessageContext, expected: str | None) -> None:
    assert rule_id(ctx) == expected


def test_default_actions_and_tweaks() -> None:
    mention = default_ruleset().evaluate(
        message(content={"body": "x", "m.mentions": {"user_ids": [ALICE]}}), Recipient(ALICE)
    )
    assert mention is not None and mention.notify and mention.highlight
    assert tweaks_of(mention.actions) == {"sound": "default", "highlight": True}
    plain = default_ruleset().evaluate(message(), Recipient(ALICE))
    assert plain is not None and plain.notify and not plain.highlight
    notice = default_ruleset().evaluate(
        message(content={"msgtype": "m.notice", "body": "x"}), Recipient(ALICE)
    )
    assert notice is not None and not notice.notify


def test_master_rule_beats_user_overrides() -> None:
    own = UserRule("override", "mine", ["notify"], [])
    master_on = {".m.rule.master": DefaultRuleOverride(enabled=True)}
    assert rule_id(message(), UserPushRules((own,), master_on)) == ".m.rule.master"
    assert rule_id(message(), UserPushRules((own,), {})) == "mine"


def test_user_rules_precede_defaults_and_kinds_are_ordered() -> None:
    ctx = message(content={"msgtype": "m.notice", "body": "tea time"})
    # a user override before .m.rule.suppress_notices
    over = UserRule(
        "override",
        "notices",
        ["notify"],
        [{"kind": "event_match", "key": "content.msgtype", "pattern": "m.notice"}],
    )
    assert rule_id(ctx, UserPushRules((over,), {})) == "notices"
    plain = message(content={"body": "It's time for tea"})
    tea = UserRule("content", "tea", ["notify"], pattern="tea")
    time_ = UserRule("content", "time", ["notify"], pattern="time")
    assert rule_id(plain, UserPushRules((tea, time_), {})) == "tea"
    assert rule_id(plain, UserPushRules((time_, tea), {})) == "time"
    room = UserRule("room", ROOM, [])
    sender = UserRule("sender", BOB, ["notify"])
    assert rule_id(plain, UserPushRules((room, sender), {})) == ROOM
    assert rule_id(plain, UserPushRules((sender,), {})) == BOB
    assert rule_id(plain, UserPushRules((tea, room), {})) == "tea"
    under = UserRule("underride", "u", ["notify"], [])
    assert rule_id(plain, UserPushRules((under,), {})) == "u"
    assert rule_id(message("m.custom", {}), UserPushRules((under,), {})) == "u"


def test_disabled_rules_and_changed_default_actions() -> None:
    disabled = UserPushRules(
        (UserRule("content", "tea", ["notify"], pattern="tea", enabled=False),), {}
    )
    assert rule_id(message(content={"body": "tea"}), disabled) == ".m.rule.message"
    off = UserPushRules((), {".m.rule.message": DefaultRuleOverride(enabled=False)})
    assert rule_id(message(), off) is None
    silent = UserPushRules((), {".m.rule.message": DefaultRuleOverride(actions=[])})
    rule = compile_ruleset(silent).evaluate(message(), Recipient(ALICE))
    assert rule is not None and rule.rule_id == ".m.rule.message" and not rule.notify


def test_legacy_actions_are_kept_but_ignored() -> None:
    # accepted and kept as set, so the API shows them back (as Synapse does) ...
    assert parse_actions(["notify", "coalesce"]) == ["notify", "coalesce"]
    assert parse_actions(["dont_notify"]) == ["dont_notify"]
    # ... but evaluation ignores them: ["dont_notify"] is the same as []
    legacy = UserPushRules((UserRule("override", "x", ["dont_notify"], []),), {})
    rule = compile_ruleset(legacy).evaluate(message(), Recipient(ALICE))
    assert rule is not None and rule.actions == () and not rule.notify
    both = UserPushRules((UserRule("override", "x", ["notify", "coalesce"], []),), {})
    rule = compile_ruleset(both).evaluate(message(), Recipient(ALICE))
    assert rule is not None and rule.actions == ("notify",) and rule.notify


def test_ruleset_json_resolves_user_placeholder() -> None:
    shown = ruleset_json(ALICE, UserPushRules())
    invite = next(r for r in shown["override"] if r["rule_id"] == ".m.rule.invite_for_me")
    assert invite["conditions"][2] == {"kind": "event_match", "key": "state_key", "pattern": ALICE}
    assert shown["override"][0]["rule_id"] == ".m.rule.master"
    assert shown["override"][0]["enabled"] is False
    assert shown["content"] == [] and shown["room"] == [] and shown["sender"] == []


def test_placement() -> None:
    a, b, c = (UserRule("override", n, []) for n in "abc")
    assert [r.rule_id for r in place_rule([a, b], c, before=None, after=None)] == ["c", "a", "b"]
    assert [r.rule_id for r in place_rule([a, b], c, before="b", after=None)] == ["a", "c", "b"]
    assert [r.rule_id for r in place_rule([a, b], c, before=None, after="a")] == ["a", "c", "b"]
    assert [r.rule_id for r in place_rule([a, b], c, before="a", after="b")] == ["c", "a", "b"]
    assert [r.rule_id for r in place_rule([a, b, c], a, before=None, after="c")] == ["b", "c", "a"]
    with pytest.raises(MatrixError) as err:
        place_rule([a], c, before="zzz", after=None)
    assert err.value.errcode == "M_INVALID_PARAM"


def test_condition_validation() -> None:
    with pytest.raises(MatrixError):
        parse_conditions([{"kind": "event_match", "key": "type"}])
    with pytest.raises(MatrixError):
        parse_conditions([{"key": "type"}])
    with pytest.raises(MatrixError):
        parse_conditions([{"kind": "event_property_is", "key": "a", "value": 1.5}])
    assert parse_conditions([{"kind": "org.custom"}]) == [{"kind": "org.custom"}]


def test_recipient_independent_conditions_are_memoised() -> None:
    ctx = message()
    ruleset = default_ruleset()
    for user in (ALICE, BOB, "@carol:test.local"):
        assert ruleset.evaluate(ctx, Recipient(user)) is not None
    memo_size = len(ctx.memo)
    ruleset.evaluate(ctx, Recipient("@dave:test.local"))
    assert len(ctx.memo) == memo_size and memo_size > 0


# -- the legacy body-mention rules (push.legacy_mention_rules) -------------------------------


def legacy_rule_id(
    ctx: MessageContext, rules: UserPushRules | None = None, name: str | None = None
) -> str | None:
    ruleset = compile_ruleset(rules or UserPushRules(), WITH_LEGACY_MENTIONS)
    rule = ruleset.evaluate(ctx, Recipient(ALICE, name))
    return rule.rule_id if rule is not None else None


@pytest.mark.parametrize(
    ("ctx", "name", "expected"),
    [
        (message(content={"body": "hey @alice:test.local"}), None, ".m.rule.contains_user_name"),
        (message(content={"body": "ALICE, look"}), None, ".m.rule.contains_user_name"),
        (message(content={"body": "malice aforethought"}), None, ".m.rule.message"),
        (
            message(content={"body": "hi Queen Alice!"}),
            "Queen Alice",
            ".m.rule.contains_display_name",
        ),
        (
            message(content={"body": "@room fire drill"}, sender_level=50),
            None,
            ".m.rule.roomnotif",
        ),
        (message(content={"body": "@room fire drill"}), None, ".m.rule.message"),
        # an event with m.mentions (even empty) is judged by those alone
        (message(content={"body": "alice", "m.mentions": {}}), None, ".m.rule.message"),
        (
            message(content={"body": "Queen Alice", "m.mentions": {}}),
            "Queen Alice",
            ".m.rule.message",
        ),
        (
            message(content={"body": "@room", "m.mentions": {}}, sender_level=100),
            None,
            ".m.rule.message",
        ),
        (
            message(content={"body": "x", "m.mentions": {"user_ids": [ALICE]}}),
            None,
            ".m.rule.is_user_mention",
        ),
        (
            message(content={"body": "alice", "msgtype": "m.notice"}),
            None,
            ".m.rule.suppress_notices",
        ),
    ],
)
def test_legacy_mention_rules(ctx: MessageContext, name: str | None, expected: str) -> None:
    assert legacy_rule_id(ctx, name=name) == expected
    # none of them exist in the spec's defaults
    assert rule_id(ctx, name=name) not in LEGACY_MENTION_RULE_IDS


def test_legacy_mention_rules_notify_and_highlight() -> None:
    ruleset = compile_ruleset(UserPushRules(), WITH_LEGACY_MENTIONS)
    rule = ruleset.evaluate(message(content={"body": "alice?"}), Recipient(ALICE))
    assert rule is not None and rule.notify and rule.highlight
    assert tweaks_of(rule.actions) == {"sound": "default", "highlight": True}
    # disabled or silenced like any default rule
    off = UserPushRules((), {".m.rule.contains_user_name": DefaultRuleOverride(enabled=False)})
    assert legacy_rule_id(message(content={"body": "alice?"}), off) == ".m.rule.message"
    quiet = UserPushRules((), {".m.rule.roomnotif": DefaultRuleOverride(actions=["dont_notify"])})
    rule = compile_ruleset(quiet, WITH_LEGACY_MENTIONS).evaluate(
        message(content={"body": "@room"}, sender_level=50), Recipient(ALICE)
    )
    assert rule is not None and rule.rule_id == ".m.rule.roomnotif" and not rule.notify


def test_legacy_mention_rules_as_shown() -> None:
    shown = ruleset_json(ALICE, UserPushRules(), WITH_LEGACY_MENTIONS)
    assert shown["content"] == [
        {
            "rule_id": ".m.rule.contains_user_name",
            "default": True,
            "enabled": True,
            "pattern": "alice",
            "actions": [
                "notify",
                {"set_tweak": "sound", "value": "default"},
                {"set_tweak": "highlight"},
            ],
        }
    ]
    ids = [r["rule_id"] for r in shown["override"]]
    assert ids.index(".m.rule.contains_display_name") == ids.index(".m.rule.is_user_mention") + 1
    assert ids.index(".m.rule.roomnotif") == ids.index(".m.rule.is_room_mention") + 1
    roomnotif = shown["override"][ids.index(".m.rule.roomnotif")]
    assert roomnotif["conditions"] == [
        {"kind": "event_match", "key": "content.body", "pattern": "@room"},
        {"kind": "sender_notification_permission", "key": "room"},
    ]
    spec = ruleset_json(ALICE, UserPushRules())
    assert spec["content"] == []
    assert not LEGACY_MENTION_RULE_IDS & {r["rule_id"] for r in spec["override"]}

"""Push rulesets: ordering, actions, validation and fast evaluation. PURE: no IO.

Client-server API, Push Rules: rules are checked by kind (override > content > room
> sender > underride); within a kind user-defined rules come before server-default
rules, except ``.m.rule.master`` which precedes every other rule. The first enabled
rule whose conditions all hold decides the actions.

A user's ruleset is compiled once (and cached by the service) into a flat tuple of
``CompiledRule``; server-default rules are compiled once for everyone, so users who
never changed their rules share one ``CompiledRuleset`` and its condition objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from homeserver.errors import BadJson, InvalidParam, MissingParam, Unrecognized
from homeserver.push.conditions import (
    USER_LOCALPART_PLACEHOLDER,
    BodyContainsLocalpart,
    Condition,
    EventMatch,
    MessageContext,
    PropertyIs,
    Recipient,
    WithoutMentions,
    compile_condition,
    is_canonical_scalar,
)
from homeserver.push.default_rules import (
    LEGACY_MENTION_RULE_IDS,
    MASTER_RULE_ID,
    SPEC_DEFAULTS,
    DefaultRules,
    rule_for_user,
)
from storage.push_rule_records import DefaultRuleOverride, UserPushRules, UserRule

KINDS: tuple[str, ...] = ("override", "content", "room", "sender", "underride")
LEGACY_ACTIONS = frozenset({"dont_notify", "coalesce"})
_CONDITION_KINDS = ("override", "underride")


# -- actions --------------------------------------------------------------------------------


def strip_legacy_actions(actions: Iterable[Any]) -> list[Any]:
    """Actions without ``dont_notify`` and ``coalesce`` (Push Rules: Historical Actions)."""
    return [a for a in actions if not (isinstance(a, str) and a in LEGACY_ACTIONS)]


def tweaks_of(actions: Iterable[Any]) -> dict[str, Any]:
    """The ``set_tweak`` actions as a dict; ``highlight`` without a value is true."""
    tweaks: dict[str, Any] = {}
    for action in actions:
        if isinstance(action, Mapping) and isinstance(action.get("set_tweak"), str):
            name = action["set_tweak"]
            if "value" in action:
                tweaks[name] = action["value"]
            elif name == "highlight":
                tweaks[name] = True
    return tweaks


def is_highlight(actions: Iterable[Any]) -> bool:
    return tweaks_of(actions).get("highlight") is True


def is_notify(actions: Iterable[Any]) -> bool:
    return "notify" in actions


# -- the stored form: storage.push_rule_records (UserRule, DefaultRuleOverride, UserPushRules)


def user_rule_json(rule: UserRule) -> dict[str, Any]:
    body: dict[str, Any] = {
        "rule_id": rule.rule_id,
        "default": False,
        "enabled": rule.enabled,
        "actions": list(rule.actions),
    }
    if rule.kind in _CONDITION_KINDS:
        body["conditions"] = list(rule.conditions or [])
    if rule.kind == "content" and rule.pattern is not None:
        body["pattern"] = rule.pattern
    return body


def default_rule_json(
    rule: Mapping[str, Any], user_id: str, override: DefaultRuleOverride | None
) -> dict[str, Any]:
    body = rule_for_user(dict(rule), user_id)
    if override is not None:
        if override.enabled is not None:
            body["enabled"] = override.enabled
        if override.actions is not None:
            body["actions"] = list(override.actions)
    return body


def ruleset_json(
    user_id: str, stored: UserPushRules, defaults_set: DefaultRules = SPEC_DEFAULTS
) -> dict[str, list[dict[str, Any]]]:
    """The ``global`` ruleset as the API shows it, each kind in evaluation order."""
    result: dict[str, list[dict[str, Any]]] = {}
    for kind in KINDS:
        defaults = defaults_set.by_kind[kind]
        own = [user_rule_json(r) for r in stored.rules if r.kind == kind]
        shown = [
            default_rule_json(r, user_id, stored.default_overrides.get(r["rule_id"]))
            for r in defaults
        ]
        if kind == "override" and shown and shown[0]["rule_id"] == MASTER_RULE_ID:
            result[kind] = [shown[0], *own, *shown[1:]]
        else:
            result[kind] = [*own, *shown]
    return result


def find_rule_json(
    user_id: str,
    stored: UserPushRules,
    kind: str,
    rule_id: str,
    defaults_set: DefaultRules = SPEC_DEFAULTS,
) -> dict[str, Any] | None:
    for rule in ruleset_json(user_id, stored, defaults_set)[kind]:
        if rule["rule_id"] == rule_id:
            return rule
    return None


# -- compiled form ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CompiledRule:
    kind: str
    rule_id: str
    conditions: tuple[Condition, ...]
    actions: tuple[Any, ...]
    notify: bool
    highlight: bool

    @classmethod
    def build(
        cls, kind: str, rule_id: str, conditions: tuple[Condition, ...], actions: Sequence[Any]
    ) -> CompiledRule:
        kept = tuple(strip_legacy_actions(actions))
        return cls(kind, rule_id, conditions, kept, is_notify(kept), is_highlight(kept))


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRuleset:
    """A user's enabled rules, flattened in evaluation order (compared by identity)."""

    rules: tuple[CompiledRule, ...]

    def evaluate(self, message: MessageContext, recipient: Recipient) -> CompiledRule | None:
        """The first rule whose conditions all hold, or None.

        Per message, each ruleset is first reduced (once, shared by every recipient
        with this ruleset) to the rules whose recipient-independent conditions hold,
        each with only its recipient-dependent conditions left to check.
        """
        plan = message.plans.get(self)
        if plan is None:
            plan = message.plans[self] = self._plan(message, recipient)
        for rule, per_user in plan:
            for condition in per_user:
                if not condition.matches(message, recipient):
                    break
            else:
                return rule
        return None

    def _plan(
        self, message: MessageContext, recipient: Recipient
    ) -> tuple[tuple[CompiledRule, tuple[Condition, ...]], ...]:
        memo = message.memo
        plan: list[tuple[CompiledRule, tuple[Condition, ...]]] = []
        for rule in self.rules:
            per_user: list[Condition] = []
            for condition in rule.conditions:
                if condition.per_user:
                    per_user.append(condition)
                    continue
                result = memo.get(condition)
                if result is None:
                    result = memo[condition] = condition.matches(message, recipient)
                if not result:
                    break
            else:
                plan.append((rule, tuple(per_user)))
                if not per_user:
                    break  # always matches: later rules are unreachable
        return tuple(plan)


def _compile_user_rule(rule: UserRule) -> CompiledRule:
    if rule.kind == "content":
        conditions: tuple[Condition, ...] = (EventMatch(("content", "body"), rule.pattern or ""),)
    elif rule.kind == "room":
        conditions = (PropertyIs(("room_id",), rule.rule_id),)
    elif rule.kind == "sender":
        conditions = (PropertyIs(("sender",), rule.rule_id),)
    else:
        conditions = tuple(compile_condition(c) for c in rule.conditions or [])
    return CompiledRule.build(rule.kind, rule.rule_id, conditions, rule.actions)


_WITHOUT_MENTIONS = WithoutMentions()


def _compile_default(kind: str, raw: Mapping[str, Any]) -> tuple[Condition, ...]:
    if kind == "content":
        pattern = raw["pattern"]
        body: Condition = (
            BodyContainsLocalpart()
            if pattern == USER_LOCALPART_PLACEHOLDER
            else EventMatch(("content", "body"), pattern)
        )
        conditions: tuple[Condition, ...] = (body,)
    else:
        conditions = tuple(compile_condition(c) for c in raw["conditions"])
    if raw["rule_id"] in LEGACY_MENTION_RULE_IDS:
        conditions = (_WITHOUT_MENTIONS, *conditions)
    return conditions


@lru_cache(maxsize=4)
def _compiled_defaults(defaults_set: DefaultRules) -> dict[str, tuple[CompiledRule, bool]]:
    """Every server-default rule compiled once: rule_id -> (rule, enabled by default)."""
    compiled: dict[str, tuple[CompiledRule, bool]] = {}
    for rule_id, (kind, raw) in defaults_set.by_id.items():
        compiled[rule_id] = (
            CompiledRule.build(kind, rule_id, _compile_default(kind, raw), raw["actions"]),
            bool(raw["enabled"]),
        )
    return compiled


def _default_rules_of(
    kind: str, overrides: Mapping[str, DefaultRuleOverride], defaults_set: DefaultRules
) -> list[CompiledRule]:
    compiled = _compiled_defaults(defaults_set)
    result = []
    for raw in defaults_set.by_kind[kind]:
        rule, enabled = compiled[raw["rule_id"]]
        override = overrides.get(rule.rule_id)
        if override is not None:
            if override.enabled is not None:
                enabled = override.enabled
            if override.actions is not None:
                rule = CompiledRule.build(kind, rule.rule_id, rule.conditions, override.actions)
        if enabled:
            result.append(rule)
    return result


@lru_cache(maxsize=4)
def default_ruleset(defaults_set: DefaultRules = SPEC_DEFAULTS) -> CompiledRuleset:
    """The ruleset of every user who changed nothing (shared)."""
    return compile_ruleset(UserPushRules(), defaults_set, _use_shared=False)


def compile_ruleset(
    stored: UserPushRules,
    defaults_set: DefaultRules = SPEC_DEFAULTS,
    *,
    _use_shared: bool = True,
) -> CompiledRuleset:
    if _use_shared and stored.is_default:
        return default_ruleset(defaults_set)
    ordered: list[CompiledRule] = []
    for kind in KINDS:
        defaults = _default_rules_of(kind, stored.default_overrides, defaults_set)
        own = [_compile_user_rule(r) for r in stored.rules if r.kind == kind and r.enabled]
        if kind == "override":
            master = [r for r in defaults if r.rule_id == MASTER_RULE_ID]
            rest = [r for r in defaults if r.rule_id != MASTER_RULE_ID]
            ordered += master + own + rest
        else:
            ordered += own + defaults
    return CompiledRuleset(tuple(ordered))


# -- validation of client input ----------------------------------------------------------------


def check_kind(kind: str) -> str:
    """A kind is a part of the request path: an unknown one names nothing."""
    if kind not in KINDS:
        raise Unrecognized(f"Unknown push rule kind: {kind}", status=400)
    return kind


def check_new_rule_id(kind: str, rule_id: str) -> None:
    """A user-defined rule ID (setPushRule: no leading dot, no slashes or backslashes)."""
    if not rule_id:
        raise InvalidParam("The rule ID must not be empty")
    if rule_id.startswith("."):
        raise InvalidParam("Rule IDs starting with '.' are reserved for server-default rules")
    if "/" in rule_id or "\\" in rule_id:
        raise InvalidParam("Rule IDs may not contain '/' or '\\'")


def parse_actions(raw: object) -> list[Any]:
    """Validate an ``actions`` array. The legacy ``dont_notify`` and ``coalesce`` are
    accepted and kept as given (the API shows the rule as it was set, as Synapse
    does); evaluation ignores them (``CompiledRule.build`` strips them)."""
    if raw is None:
        raise MissingParam("Missing parameter: actions")
    if not isinstance(raw, list):
        raise BadJson("'actions' must be an array")
    for action in raw:
        if isinstance(action, str):
            if action != "notify" and action not in LEGACY_ACTIONS:
                raise InvalidParam(f"Unknown action: {action}")
        elif isinstance(action, dict):
            if not isinstance(action.get("set_tweak"), str):
                raise InvalidParam("An action object must have a string 'set_tweak'")
        else:
            raise BadJson("Each action must be a string or an object")
    return list(raw)


def parse_conditions(raw: object) -> list[dict[str, Any]]:
    """Validate a ``conditions`` array (unknown kinds are kept: they never match)."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadJson("'conditions' must be an array")
    for condition in raw:
        if not isinstance(condition, dict) or not isinstance(condition.get("kind"), str):
            raise BadJson("Each condition must be an object with a string 'kind'")
        kind = condition["kind"]
        if kind in ("event_match", "event_property_is", "event_property_contains"):
            _need_str(condition, "key", kind)
        if kind == "event_match":
            _need_str(condition, "pattern", kind)
        if kind in ("event_property_is", "event_property_contains"):
            if "value" not in condition:
                raise InvalidParam(f"A {kind} condition needs 'value'")
            if not is_canonical_scalar(condition["value"]):
                raise InvalidParam(
                    f"The value of a {kind} condition must be a string, integer, boolean or null"
                )
        if kind == "room_member_count":
            _need_str(condition, "is", kind)
        if kind == "sender_notification_permission":
            _need_str(condition, "key", kind)
    return raw


def _need_str(condition: Mapping[str, Any], key: str, kind: str) -> None:
    if not isinstance(condition.get(key), str):
        raise InvalidParam(f"A {kind} condition needs a string '{key}'")


def parse_rule_body(kind: str, rule_id: str, body: Mapping[str, Any]) -> UserRule:
    """The body of setPushRule as a (new, enabled) ``UserRule``."""
    actions = parse_actions(body.get("actions"))
    conditions: list[Any] | None = None
    pattern: str | None = None
    if kind in _CONDITION_KINDS:
        conditions = parse_conditions(body.get("conditions"))
    elif kind == "content":
        raw_pattern = body.get("pattern")
        if raw_pattern is None:
            raise MissingParam("Content rules need a 'pattern'")
        if not isinstance(raw_pattern, str):
            raise BadJson("'pattern' must be a string")
        pattern = raw_pattern
    return UserRule(kind, rule_id, actions, conditions, pattern, True)


def place_rule(
    rules: Sequence[UserRule], new: UserRule, *, before: str | None, after: str | None
) -> list[UserRule]:
    """The user's rules of ``new.kind`` with ``new`` placed (setPushRule ``before``/``after``).

    Without ``before``/``after`` an existing rule keeps its place and a new one becomes
    the most important user rule of its kind.
    """
    same_kind = [r for r in rules if r.kind == new.kind]
    existing = next((r for r in same_kind if r.rule_id == new.rule_id), None)
    if existing is not None:
        new = UserRule(
            new.kind, new.rule_id, new.actions, new.conditions, new.pattern, existing.enabled
        )
    anchor = before if before is not None else after
    if anchor is None:
        if existing is not None:
            return [new if r.rule_id == new.rule_id else r for r in same_kind]
        return [new, *same_kind]
    if anchor == new.rule_id:
        raise InvalidParam("A rule cannot be placed relative to itself")
    others = [r for r in same_kind if r.rule_id != new.rule_id]
    index = next((i for i, r in enumerate(others) if r.rule_id == anchor), None)
    if index is None:
        raise InvalidParam(f"before/after rule not found: {anchor}")
    if before is None:
        index += 1
    return [*others[:index], new, *others[index:]]

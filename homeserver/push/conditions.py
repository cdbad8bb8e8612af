"""Push rule conditions (client-server API: Push Rules, "Conditions"). PURE: no IO.

An event is flattened once per message into a map from property path (a tuple of
keys, parsed from the spec's dot-separated paths with ``\\.`` and ``\\\\`` escapes)
to its leaf value. Each condition is compiled once into a small object whose
``matches(message, recipient)`` reads that map. Conditions that do not depend on the
recipient (``per_user`` False) are evaluated at most once per message: the evaluator
memoises them, so 500 recipients sharing the default rules cost one glob match each.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

Path = tuple[str, ...]
Scalar = str | int | bool | None

# Not matched against by any rule; flattening them would only cost time.
_SKIPPED_TOP_LEVEL = frozenset({"signatures", "hashes", "unsigned"})
_MAX_SAFE_INT = 2**53 - 1
_ABSENT: Any = object()

# Placeholders in server-default rules for the recipient's own user ID and localpart.
USER_ID_PLACEHOLDER = "[the user's Matrix ID]"
USER_LOCALPART_PLACEHOLDER = "[the user's localpart]"


def split_path(key: str) -> Path:
    """Parse a dot-separated property path (appendices: Dot-separated property paths).

    ``\\.`` is a literal dot, ``\\\\`` a literal backslash; any other backslash is kept.
    """
    parts: list[str] = []
    current: list[str] = []
    i = 0
    while i < len(key):
        char = key[i]
        if char == "\\" and i + 1 < len(key) and key[i + 1] in ".\\":
            current.append(key[i + 1])
            i += 2
            continue
        if char == ".":
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return tuple(parts)


def flatten_event(event: Mapping[str, Any]) -> dict[Path, Any]:
    """Every leaf of the event (objects are descended into, arrays are leaves)."""
    flat: dict[Path, Any] = {}

    def walk(prefix: Path, value: Mapping[str, Any]) -> None:
        for key, child in value.items():
            path = (*prefix, key)
            if isinstance(child, Mapping):
                walk(path, child)
            else:
                flat[path] = child

    for key, value in event.items():
        if key in _SKIPPED_TOP_LEVEL:
            continue
        if isinstance(value, Mapping):
            walk((key,), value)
        else:
            flat[(key,)] = value
    return flat


def is_canonical_scalar(value: object) -> bool:
    """A non-compound canonical JSON value: string, safe integer, boolean or null."""
    if value is None or isinstance(value, (str, bool)):
        return True
    return isinstance(value, int) and -_MAX_SAFE_INT <= value <= _MAX_SAFE_INT


def _same_value(a: object, b: object) -> bool:
    """Exact equality without casting (True is not 1)."""
    return type(a) is type(b) and a == b


@lru_cache(maxsize=4096)
def glob_regex(pattern: str, word_boundary: bool) -> re.Pattern[str]:
    """A glob (appendices: Glob-style matching) as a case-insensitive regex.

    With ``word_boundary`` the pattern may match any substring that starts and ends
    at a word boundary: the start or end of the value or a character outside
    ``[A-Za-z0-9_]`` (used for ``content.body``).
    """
    pieces: list[str] = []
    previous = ""
    for char in pattern:
        if char == "*":
            if previous != "*":  # "**" is "*": avoid needless backtracking
                pieces.append(".*?")
        elif char == "?":
            pieces.append(".")
        else:
            pieces.append(re.escape(char))
        previous = char
    body = "".join(pieces)
    if word_boundary:
        body = f"(?:^|[^A-Za-z0-9_])(?:{body})(?:[^A-Za-z0-9_]|$)"
    else:
        body = f"(?:{body})\\Z"
    return re.compile(body, re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str, *, word_boundary: bool = False) -> bool:
    regex = glob_regex(pattern, word_boundary)
    if word_boundary:
        return regex.search(value) is not None
    return regex.match(value) is not None


# -- what conditions are evaluated against ---------------------------------------------


@dataclass(slots=True)
class MessageContext:
    """One event as push rules see it, built once per message."""

    flat: dict[Path, Any]
    room_member_count: int
    sender_power_level: float = 0
    # whether the content has an ``m.mentions`` property (even an empty one)
    has_mentions: bool = False
    # the power level event's ``notifications`` (key -> required level)
    notification_levels: Mapping[str, int] = field(default_factory=dict)
    # results of recipient-independent conditions, by condition object
    memo: dict[Condition, bool] = field(default_factory=dict)
    # per ruleset: the rules still possible and their recipient-dependent conditions
    plans: dict[Any, Any] = field(default_factory=dict)

    @classmethod
    def of(
        cls,
        event: Mapping[str, Any],
        *,
        room_member_count: int,
        sender_power_level: float = 0,
        notification_levels: Mapping[str, int] | None = None,
    ) -> MessageContext:
        content = event.get("content")
        return cls(
            flatten_event(event),
            room_member_count,
            sender_power_level,
            isinstance(content, Mapping) and "m.mentions" in content,
            notification_levels or {},
        )

    def body(self) -> str | None:
        value = self.flat.get(("content", "body"))
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class Recipient:
    """The user whose rules are evaluated."""

    user_id: str
    display_name: str | None = None


# -- compiled conditions ------------------------------------------------------------------


class Condition:
    """A compiled condition; ``per_user`` conditions depend on the recipient."""

    __slots__ = ()
    per_user = False

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        raise NotImplementedError


class NeverMatches(Condition):
    """An unrecognised or malformed condition: MUST NOT match any event."""

    __slots__ = ()

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        return False


class EventMatch(Condition):
    """``event_match``: a glob over a string property (word boundaries for content.body)."""

    __slots__ = ("_literal", "_path", "_regex", "_word_boundary")

    def __init__(self, path: Path, pattern: str) -> None:
        self._path = path
        self._word_boundary = path == ("content", "body")
        has_wildcard = "*" in pattern or "?" in pattern
        # Exact (case-insensitive) comparison is much cheaper than a regex.
        self._literal = None if has_wildcard or self._word_boundary else pattern.casefold()
        self._regex = glob_regex(pattern, self._word_boundary)

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        value = message.flat.get(self._path)
        if not isinstance(value, str):
            return False
        if self._literal is not None:
            return value.casefold() == self._literal
        if self._word_boundary:
            return self._regex.search(value) is not None
        return self._regex.match(value) is not None


class EventMatchUserId(Condition):
    """``event_match`` whose pattern is the recipient's own user ID (default rules)."""

    __slots__ = ("_path",)
    per_user = True

    def __init__(self, path: Path) -> None:
        self._path = path

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        value = message.flat.get(self._path)
        return isinstance(value, str) and value.casefold() == recipient.user_id.casefold()


class PropertyIs(Condition):
    """``event_property_is``: exact equality with a non-compound value."""

    __slots__ = ("_path", "_value")

    def __init__(self, path: Path, value: Scalar) -> None:
        self._path = path
        self._value = value

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        value = message.flat.get(self._path, _ABSENT)
        if value is _ABSENT or not is_canonical_scalar(value):
            return False
        return _same_value(value, self._value)


class PropertyContains(Condition):
    """``event_property_contains``: an array property holds exactly this value."""

    __slots__ = ("_path", "_value")

    def __init__(self, path: Path, value: Scalar) -> None:
        self._path = path
        self._value = value

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        values = message.flat.get(self._path)
        if not isinstance(values, list):
            return False
        return any(_same_value(v, self._value) for v in values if is_canonical_scalar(v))


class PropertyContainsUserId(Condition):
    """``event_property_contains`` with the recipient's user ID (``.m.rule.is_user_mention``)."""

    __slots__ = ("_path",)
    per_user = True

    def __init__(self, path: Path) -> None:
        self._path = path

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        values = message.flat.get(self._path)
        return isinstance(values, list) and recipient.user_id in values


class BodyContainsLocalpart(Condition):
    """The body mentions the recipient's localpart, at word boundaries
    (``.m.rule.contains_user_name``, a legacy default rule)."""

    __slots__ = ()
    per_user = True

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        body = message.body()
        localpart = recipient.user_id[1:].split(":", 1)[0]
        if body is None or not localpart:
            return False
        return _display_name_regex(localpart).search(body) is not None


class WithoutMentions(Condition):
    """The event has no ``m.mentions`` property: the legacy body-mention rules apply
    only then (an internal condition of those default rules, never shown)."""

    __slots__ = ()

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        return not message.has_mentions


class ContainsDisplayName(Condition):
    """``contains_display_name`` (deprecated): the body mentions the recipient's name."""

    __slots__ = ()
    per_user = True

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        name = recipient.display_name
        body = message.body()
        if not name or body is None:
            return False
        return _display_name_regex(name).search(body) is not None


@lru_cache(maxsize=4096)
def _display_name_regex(name: str) -> re.Pattern[str]:
    return re.compile(f"(?:^|[^A-Za-z0-9_]){re.escape(name)}(?:[^A-Za-z0-9_]|$)", re.IGNORECASE)


_MEMBER_COUNT = re.compile(r"(==|<=|>=|<|>)?([0-9]+)")


class RoomMemberCount(Condition):
    """``room_member_count``: ``is`` is a decimal optionally prefixed by ==, <, >, <=, >=."""

    __slots__ = ("_number", "_op")

    def __init__(self, op: str, number: int) -> None:
        self._op = op
        self._number = number

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        count, number = message.room_member_count, self._number
        if self._op == "<":
            return count < number
        if self._op == ">":
            return count > number
        if self._op == "<=":
            return count <= number
        if self._op == ">=":
            return count >= number
        return count == number


class SenderNotificationPermission(Condition):
    """``sender_notification_permission``: the sender's level reaches ``notifications.<key>``."""

    __slots__ = ("_key",)

    def __init__(self, key: str) -> None:
        self._key = key

    def matches(self, message: MessageContext, recipient: Recipient) -> bool:
        required = message.notification_levels.get(self._key, 50)
        return message.sender_power_level >= required


def compile_condition(raw: object) -> Condition:
    """Compile one condition as stored in a rule; anything not understood never matches."""
    if not isinstance(raw, Mapping):
        return NeverMatches()
    kind = raw.get("kind")
    key = raw.get("key")
    if kind == "event_match":
        pattern = raw.get("pattern")
        if not isinstance(key, str) or not isinstance(pattern, str):
            return NeverMatches()
        if pattern == USER_ID_PLACEHOLDER:
            return EventMatchUserId(split_path(key))
        return EventMatch(split_path(key), pattern)
    if kind in ("event_property_is", "event_property_contains"):
        if not isinstance(key, str) or "value" not in raw:
            return NeverMatches()
        value = raw["value"]
        if not is_canonical_scalar(value):
            return NeverMatches()
        if kind == "event_property_is":
            return PropertyIs(split_path(key), value)
        if value == USER_ID_PLACEHOLDER:
            return PropertyContainsUserId(split_path(key))
        return PropertyContains(split_path(key), value)
    if kind == "contains_display_name":
        return ContainsDisplayName()
    if kind == "room_member_count":
        spec = raw.get("is")
        match = _MEMBER_COUNT.fullmatch(spec) if isinstance(spec, str) else None
        if match is None:
            return NeverMatches()
        return RoomMemberCount(match.group(1) or "==", int(match.group(2)))
    if kind == "sender_notification_permission":
        if not isinstance(key, str):
            return NeverMatches()
        return SenderNotificationPermission(key)
    return NeverMatches()

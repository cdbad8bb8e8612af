"""The body of a simplified sliding sync request (MSC4186), parsed and validated.

PURE: takes the decoded JSON, gives typed values back or raises a Matrix error
(400 M_BAD_JSON / M_INVALID_PARAM) naming the field, as Synapse's request model does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from homeserver.errors import BadJson, InvalidParam

MAX_TIMELINE_LIMIT = 1000
MAX_LIST_NAME_LENGTH = 64
MAX_LISTS = 100
WILDCARD = "*"
LAZY = "$LAZY"
ME = "$ME"


@dataclass(frozen=True)
class ListFilters:
    is_dm: bool | None = None
    spaces: tuple[str, ...] | None = None
    is_encrypted: bool | None = None
    is_invite: bool | None = None
    room_types: tuple[str | None, ...] | None = None
    not_room_types: tuple[str | None, ...] | None = None
    room_name_like: str | None = None
    tags: tuple[str, ...] | None = None
    not_tags: tuple[str, ...] | None = None


@dataclass(frozen=True)
class RoomParams:
    """What a list or a room subscription asks of each room."""

    required_state: tuple[tuple[str, str], ...]
    timeline_limit: int


@dataclass(frozen=True)
class ListRequest:
    name: str
    params: RoomParams
    ranges: tuple[tuple[int, int], ...] | None  # None: every room of the list
    filters: ListFilters | None = None


@dataclass(frozen=True)
class SlidingSyncRequest:
    conn_id: str | None = None
    lists: dict[str, ListRequest] = field(default_factory=dict)
    room_subscriptions: dict[str, RoomParams] = field(default_factory=dict)
    extensions: Mapping[str, Any] = field(default_factory=dict)


def _bad(where: str, message: str) -> BadJson:
    return BadJson(f"{where}: {message}")


def _strict_bool(value: object, where: str) -> bool | None:
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _bad(where, "expected a boolean")
    return value


def _strict_int(value: object, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(where, "expected an integer")
    return value


def _str_list(value: object, where: str, *, nullable_items: bool = False) -> tuple[Any, ...]:
    if not isinstance(value, list):
        raise _bad(where, "expected a list")
    for index, item in enumerate(value):
        if item is None and nullable_items:
            continue
        if not isinstance(item, str):
            raise _bad(f"{where}[{index}]", "expected a string")
    return tuple(value)


def _room_params(raw: Mapping[str, Any], where: str) -> RoomParams:
    if "required_state" not in raw:
        raise _bad(f"{where}.required_state", "field required")
    if "timeline_limit" not in raw:
        raise _bad(f"{where}.timeline_limit", "field required")
    required = raw["required_state"]
    if not isinstance(required, list):
        raise _bad(f"{where}.required_state", "expected a list")
    pairs: list[tuple[str, str]] = []
    for index, pair in enumerate(required):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(isinstance(part, str) for part in pair)
        ):
            raise _bad(f"{where}.required_state[{index}]", "expected [event type, state key]")
        pairs.append((pair[0], pair[1]))
    limit = _strict_int(raw["timeline_limit"], f"{where}.timeline_limit")
    if limit < 0 or limit > MAX_TIMELINE_LIMIT:
        raise InvalidParam(f"{where}.timeline_limit: must be between 0 and {MAX_TIMELINE_LIMIT}")
    return RoomParams(tuple(pairs), limit)


def _filters(raw: object, where: str) -> ListFilters | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad(where, "expected an object")

    def opt_list(key: str, *, nullable: bool = False) -> tuple[Any, ...] | None:
        value = raw.get(key)
        if value is None:
            return None
        return _str_list(value, f"{where}.{key}", nullable_items=nullable)

    name_like = raw.get("room_name_like")
    if name_like is not None and not isinstance(name_like, str):
        raise _bad(f"{where}.room_name_like", "expected a string")
    return ListFilters(
        is_dm=_strict_bool(raw.get("is_dm"), f"{where}.is_dm"),
        spaces=opt_list("spaces"),
        is_encrypted=_strict_bool(raw.get("is_encrypted"), f"{where}.is_encrypted"),
        is_invite=_strict_bool(raw.get("is_invite"), f"{where}.is_invite"),
        room_types=opt_list("room_types", nullable=True),
        not_room_types=opt_list("not_room_types", nullable=True),
        room_name_like=name_like,
        tags=opt_list("tags"),
        not_tags=opt_list("not_tags"),
    )


def _ranges(raw: object, where: str) -> tuple[tuple[int, int], ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise _bad(where, "expected a list")
    ranges: list[tuple[int, int]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, list) or len(item) != 2:
            raise _bad(f"{where}[{index}]", "expected [start, end]")
        start = _strict_int(item[0], f"{where}[{index}][0]")
        end = _strict_int(item[1], f"{where}[{index}][1]")
        if start < 0 or end < 0:
            raise InvalidParam(f"{where}[{index}]: must not be negative")
        if start > end:
            raise InvalidParam(f"{where}[{index}]: start must not be after end")
        ranges.append((start, end))
    return tuple(ranges)


def parse_request(body: object) -> SlidingSyncRequest:
    """The request body; every bad field is a 400 naming it."""
    if not isinstance(body, dict):
        raise BadJson("The request body must be a JSON object")
    conn_id = body.get("conn_id")
    if conn_id is not None and not isinstance(conn_id, str):
        raise _bad("conn_id", "expected a string")
    lists: dict[str, ListRequest] = {}
    raw_lists = body.get("lists")
    if raw_lists is not None:
        if not isinstance(raw_lists, dict):
            raise _bad("lists", "expected an object")
        if len(raw_lists) > MAX_LISTS:
            raise InvalidParam(f"lists: at most {MAX_LISTS} lists")
        for name, raw in raw_lists.items():
            where = f"lists.{name}"
            if len(name.encode("utf-8")) > MAX_LIST_NAME_LENGTH:
                raise InvalidParam(f"{where}: list names are at most 64 bytes")
            if not isinstance(raw, dict):
                raise _bad(where, "expected an object")
            slow_all = _strict_bool(raw.get("slow_get_all_rooms"), f"{where}.slow_get_all_rooms")
            ranges = _ranges(raw.get("ranges"), f"{where}.ranges")
            lists[name] = ListRequest(
                name,
                _room_params(raw, where),
                None if slow_all else ranges,
                _filters(raw.get("filters"), f"{where}.filters"),
            )
    subscriptions: dict[str, RoomParams] = {}
    raw_subs = body.get("room_subscriptions")
    if raw_subs is not None:
        if not isinstance(raw_subs, dict):
            raise _bad("room_subscriptions", "expected an object")
        for room_id, raw in raw_subs.items():
            where = f"room_subscriptions.{room_id}"
            if not room_id.startswith("!"):
                raise InvalidParam(f"{where}: not a room ID")
            if not isinstance(raw, dict):
                raise _bad(where, "expected an object")
            subscriptions[room_id] = _room_params(raw, where)
    extensions = body.get("extensions")
    if extensions is None:
        extensions = {}
    if not isinstance(extensions, dict):
        raise _bad("extensions", "expected an object")
    return SlidingSyncRequest(conn_id, lists, subscriptions, extensions)

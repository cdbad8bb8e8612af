"""The ``extensions`` of a simplified sliding sync request (MSC4186), parsed.

PURE: takes the decoded JSON, gives typed values back or raises 400 M_BAD_JSON (a
value of the wrong type) or M_INVALID_PARAM (a ``to_device.since`` that is not a
position), as Synapse's request model answers. Unknown extension names are ignored.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from homeserver.errors import BadJson, InvalidParam
from homeserver.streams import MAX_POSITION

WILDCARD = "*"
TO_DEVICE_LIMIT = 100  # the default and the most a response carries (as Synapse)

TO_DEVICE = "to_device"
E2EE = "e2ee"
ACCOUNT_DATA = "account_data"
RECEIPTS = "receipts"
TYPING = "typing"


@dataclass(frozen=True)
class ToDeviceRequest:
    limit: int = TO_DEVICE_LIMIT
    since: int | None = None  # the previous response's ``next_batch``


@dataclass(frozen=True)
class RoomScope:
    """``lists`` and ``rooms`` of a room-scoped extension (None: nothing of that kind)."""

    lists: tuple[str, ...] | None = (WILDCARD,)
    rooms: tuple[str, ...] | None = (WILDCARD,)

    def select(
        self, list_rooms: Mapping[str, Sequence[str]], subscribed_rooms: Collection[str]
    ) -> set[str]:
        """The rooms this scope names among the response's lists and subscriptions."""
        selected: set[str] = set()
        if self.rooms is not None:
            if WILDCARD in self.rooms:
                selected.update(subscribed_rooms)
            else:
                subscribed = set(subscribed_rooms)
                selected.update(r for r in self.rooms if r in subscribed)
        if self.lists is not None:
            names = list_rooms.keys() if WILDCARD in self.lists else self.lists
            for name in names:
                selected.update(list_rooms.get(name, ()))
        return selected


@dataclass(frozen=True)
class ExtensionsRequest:
    """The enabled extensions of a request (None: absent or not enabled)."""

    to_device: ToDeviceRequest | None = None
    e2ee: bool = False
    account_data: RoomScope | None = None
    receipts: RoomScope | None = None
    typing: RoomScope | None = None

    @property
    def any_enabled(self) -> bool:
        return any((self.to_device, self.e2ee, self.account_data, self.receipts, self.typing))


def _where(*path: str) -> str:
    return "extensions." + ".".join(path)


def _object(value: object, where: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise BadJson(f"{where}: expected an object")
    return value


def _enabled(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get("enabled")
    if value is not None and not isinstance(value, bool):
        raise BadJson(f"{_where(name, 'enabled')}: expected a boolean")
    return bool(value)


def _names(raw: Mapping[str, Any], name: str, key: str) -> tuple[str, ...] | None:
    if key not in raw:
        return (WILDCARD,)
    value = raw[key]
    if value is None:
        return None
    where = _where(name, key)
    if not isinstance(value, list):
        raise BadJson(f"{where}: expected a list")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise BadJson(f"{where}[{index}]: expected a string")
    return tuple(value)


def _to_device(raw: Mapping[str, Any]) -> ToDeviceRequest:
    limit = raw.get("limit", TO_DEVICE_LIMIT)
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise BadJson(f"{_where(TO_DEVICE, 'limit')}: expected an integer")
    if limit < 0:
        raise InvalidParam(f"{_where(TO_DEVICE, 'limit')}: must not be negative")
    since = raw.get("since")
    position: int | None = None
    if since is not None:
        if not isinstance(since, str):
            raise BadJson(f"{_where(TO_DEVICE, 'since')}: expected a string")
        digits = since[1:] if since.startswith("-") else since
        if not digits.isascii() or not digits.isdigit() or int(digits) > MAX_POSITION:
            raise InvalidParam(
                f"'{_where(TO_DEVICE, 'since')}' is invalid (should look like an int)"
            )
        position = max(int(since), 0)  # a negative one: from the start, as Synapse reads it
    return ToDeviceRequest(min(limit, TO_DEVICE_LIMIT), position)


def parse_extensions(raw: object) -> ExtensionsRequest:
    """The body's ``extensions`` (None or absent: none); unknown names are ignored, a
    value of the wrong type is 400 M_BAD_JSON, a ``to_device.since`` that is not a
    position 400 M_INVALID_PARAM (as Synapse's request model answers)."""
    body = _object(raw, "extensions")
    if body is None:
        return ExtensionsRequest()
    parsed: dict[str, Any] = {}
    for name in (TO_DEVICE, E2EE, ACCOUNT_DATA, RECEIPTS, TYPING):
        section = _object(body.get(name), _where(name))
        if section is None:
            continue
        enabled = _enabled(section, name)
        if name == TO_DEVICE:
            request = _to_device(section)  # checked even when disabled, as Synapse
            parsed[name] = request if enabled else None
        elif name == E2EE:
            parsed[name] = enabled
        else:
            scope = RoomScope(_names(section, name, "lists"), _names(section, name, "rooms"))
            parsed[name] = scope if enabled else None
    return ExtensionsRequest(**parsed)

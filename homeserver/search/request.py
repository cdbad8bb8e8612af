"""Pure parts of server-side search: what is indexed, the request body, batch tokens,
groupings and highlights (client-server API, "Server Side Search")."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from homeserver.errors import BadJson, InvalidParam, MissingParam
from homeserver.sync.filters import RoomEventFilter, parse_room_event_filter

# the keys a client may search, and the event type whose content holds each
KEY_OF_TYPE = {
    "m.room.message": "content.body",
    "m.room.name": "content.name",
    "m.room.topic": "content.topic",
}
ALL_KEYS = tuple(KEY_OF_TYPE.values())
ORDERS = ("rank", "recent")
GROUP_KEYS = ("room_id", "sender")
DEFAULT_LIMIT = 10
MAX_LIMIT = 100
DEFAULT_CONTEXT = 5
MAX_CONTEXT = 100
MAX_WORDS = 16

_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def indexed_text(event_type: str, content: Mapping[str, Any]) -> tuple[str, str] | None:
    """(key, text) a search finds this event by, or None if it is not indexed."""
    key = KEY_OF_TYPE.get(event_type)
    if key is None:
        return None
    value = content.get(key.removeprefix("content."))
    if not isinstance(value, str) or not value.strip():
        return None
    return key, value


def words_of(text: str) -> list[str]:
    """The distinct lower-cased words (letters and digits) of ``text``, in order."""
    return list(dict.fromkeys(_WORD.findall(text.lower())))


@dataclass(frozen=True)
class EventContextRequest:
    before_limit: int = DEFAULT_CONTEXT
    after_limit: int = DEFAULT_CONTEXT
    include_profile: bool = False


@dataclass(frozen=True)
class SearchRequest:
    """The ``room_events`` category of a search."""

    search_term: str
    words: tuple[str, ...]
    keys: tuple[str, ...] = ALL_KEYS
    filter: RoomEventFilter = field(default_factory=RoomEventFilter)
    order_by: str = "rank"
    event_context: EventContextRequest | None = None
    include_state: bool = False
    group_by: tuple[str, ...] = ()

    @property
    def limit(self) -> int:
        limit = self.filter.limit if self.filter.limit is not None else DEFAULT_LIMIT
        return max(0, min(limit, MAX_LIMIT))


def parse_search_request(body: Mapping[str, Any]) -> SearchRequest | None:
    """The room_events category of a POST /search body; None if it asks for none.
    M_BAD_JSON / M_MISSING_PARAM / M_INVALID_PARAM for a malformed body."""
    categories = body.get("search_categories")
    if categories is None:
        raise MissingParam("Missing parameter: search_categories")
    if not isinstance(categories, Mapping):
        raise BadJson("'search_categories' must be an object")
    room = categories.get("room_events")
    if room is None:
        return None
    if not isinstance(room, Mapping):
        raise BadJson("'search_categories.room_events' must be an object")
    term = room.get("search_term")
    if term is None:
        raise MissingParam("Missing parameter: search_term")
    if not isinstance(term, str):
        raise BadJson("'search_term' must be a string")
    keys = _keys(room.get("keys"))
    order_by = room.get("order_by", "rank")
    if order_by not in ORDERS:
        raise InvalidParam("'order_by' must be 'rank' or 'recent'")
    raw_filter = room.get("filter")
    event_filter = (
        RoomEventFilter() if raw_filter is None else parse_room_event_filter(raw_filter, "filter.")
    )
    include_state = room.get("include_state", False)
    if not isinstance(include_state, bool):
        raise BadJson("'include_state' must be a boolean")
    return SearchRequest(
        search_term=term,
        words=tuple(words_of(term)[:MAX_WORDS]),
        keys=keys,
        filter=event_filter,
        order_by=order_by,
        event_context=_event_context(room.get("event_context")),
        include_state=include_state,
        group_by=_group_by(room.get("groupings")),
    )


def _keys(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ALL_KEYS
    if not isinstance(raw, list) or not all(isinstance(k, str) for k in raw):
        raise BadJson("'keys' must be a list of strings")
    unknown = [k for k in raw if k not in ALL_KEYS]
    if unknown:
        raise InvalidParam(f"Unknown search key {unknown[0]!r}: use one of {', '.join(ALL_KEYS)}")
    return tuple(dict.fromkeys(raw)) or ALL_KEYS


def _event_context(raw: Any) -> EventContextRequest | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise BadJson("'event_context' must be an object")
    limits = []
    for name in ("before_limit", "after_limit"):
        value = raw.get(name, DEFAULT_CONTEXT)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise BadJson(f"'event_context.{name}' must be a non-negative integer")
        limits.append(min(value, MAX_CONTEXT))
    profile = raw.get("include_profile", False)
    if not isinstance(profile, bool):
        raise BadJson("'event_context.include_profile' must be a boolean")
    return EventContextRequest(limits[0], limits[1], profile)


def _group_by(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise BadJson("'groupings' must be an object")
    groups = raw.get("group_by", [])
    if not isinstance(groups, list):
        raise BadJson("'groupings.group_by' must be a list")
    keys: list[str] = []
    for group in groups:
        key = group.get("key") if isinstance(group, Mapping) else None
        if key not in GROUP_KEYS:
            raise InvalidParam("'groupings.group_by[].key' must be 'room_id' or 'sender'")
        keys.append(key)
    return tuple(dict.fromkeys(keys))


# -- batch tokens: where the next page starts -------------------------------------


# where a page of recent matches stopped: the (origin_server_ts, stream position) of
# its last match; the next page is older (Synapse's order: time, then stream)
RecentPosition = tuple[int, int]


def rank_token(offset: int) -> str:
    """``r<offset>`` into the ranked matches."""
    return f"r{offset}"


def recent_token(position: RecentPosition) -> str:
    """``s<ts>_<stream>``: matches older than this one (stream positions of
    backfilled history are negative)."""
    return f"s{position[0]}_{position[1]}"


def parse_rank_batch(token: str | None) -> int | None:
    """The offset of a ``next_batch`` token of rank order; M_INVALID_PARAM otherwise."""
    if token is None:
        return None
    if not token.startswith("r") or not _is_number(token[1:], signed=False):
        raise InvalidParam("Invalid next_batch token")
    return int(token[1:])


def parse_recent_batch(token: str | None) -> RecentPosition | None:
    """The position of a ``next_batch`` token of recent order; M_INVALID_PARAM otherwise."""
    if token is None:
        return None
    ts, sep, stream = token[1:].partition("_")
    if (
        not token.startswith("s")
        or not sep
        or not _is_number(ts, signed=False)
        or not _is_number(stream, signed=True)
    ):
        raise InvalidParam("Invalid next_batch token")
    return int(ts), int(stream)


def _is_number(text: str, *, signed: bool) -> bool:
    digits = text.removeprefix("-") if signed else text
    return digits.isascii() and digits.isdigit() and len(digits) <= 18


# -- the shape of the results -----------------------------------------------------


def highlights(words: Sequence[str], texts: Iterable[str]) -> list[str]:
    """The words of the results that the query's words match (each a prefix), so a
    client can mark them."""
    found: dict[str, None] = {}
    for text in texts:
        for word in _WORD.findall(text):
            lower = word.lower()
            if any(lower.startswith(w) for w in words):
                found.setdefault(word, None)
    return sorted(found)


@dataclass(frozen=True)
class Grouped:
    """One result's place in the groupings: its event, room, sender and order."""

    event_id: str
    room_id: str
    sender: str
    order: float


def groups_of(
    group_by: Sequence[str], results: Sequence[Grouped], next_batch: str | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``groups``: for each grouping key, the results' event IDs per room or sender,
    with the group's order (its best result's) and the page's next_batch."""
    groups: dict[str, dict[str, dict[str, Any]]] = {}
    for key in group_by:
        by_value: dict[str, dict[str, Any]] = {}
        for result in results:
            value = result.room_id if key == "room_id" else result.sender
            group = by_value.setdefault(value, {"results": [], "order": result.order})
            group["results"].append(result.event_id)
            group["order"] = max(group["order"], result.order)
            if next_batch is not None:
                group["next_batch"] = next_batch
        groups[key] = by_value
    return groups

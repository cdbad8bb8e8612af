"""The immutable room event over its PDU JSON.

The raw PDU dict is kept as received (unknown fields are never lost); accessors read
it by the rules of the event's room version (spec: rooms "Event format" sections and
the ``pdu_v*`` definitions). The redacted form and its canonical bytes are computed at
most once while an event is built or checked, since event IDs, signature checks and
redaction all use them, and are released when it is cached.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from .hashing import event_id_from_reference_hash, signing_bytes
from .redaction import redact
from .room_versions import EventIdFormat, RoomVersion

_EMPTY: Mapping[str, Any] = {}


def _ids_from_refs(refs: Any, fmt: EventIdFormat) -> tuple[str, ...]:
    """Event IDs from ``prev_events``/``auth_events`` in either PDU format."""
    if not isinstance(refs, list):
        return ()
    if fmt is EventIdFormat.V1:
        # v1/v2: [[event_id, {"sha256": ...}], ...]
        return tuple(
            r[0] for r in refs if isinstance(r, list) and len(r) == 2 and isinstance(r[0], str)
        )
    return tuple(r for r in refs if isinstance(r, str))


class Event:
    """A PDU of a given room version, with typed read-only accessors.

    The event takes ownership of ``pdu``: callers must not mutate it afterwards.
    ``rejected_reason`` is local metadata (not part of the JSON): set when the
    server rejected the event under the auth rules (s2s "Rejection").
    """

    __slots__ = (
        "_auth_event_ids",
        "_pdu",
        "_prev_event_ids",
        "_redacted",
        "_signing_bytes",
        "event_id",
        "rejected_reason",
        "room_version",
        "state_key",
        "type",
    )

    def __init__(
        self,
        pdu: dict[str, Any],
        room_version: RoomVersion,
        *,
        event_id: str | None = None,
        rejected_reason: str | None = None,
    ) -> None:
        self._pdu = pdu
        self.room_version = room_version
        # read on every check and every hook: plain attributes, not properties
        event_type = pdu.get("type")
        self.type: str = event_type if isinstance(event_type, str) else ""
        state_key = pdu.get("state_key")
        self.state_key: str | None = state_key if isinstance(state_key, str) else None
        self.rejected_reason = rejected_reason
        self._redacted: dict[str, Any] | None = None
        self._signing_bytes: bytes | None = None
        self._prev_event_ids: tuple[str, ...] | None = None
        self._auth_event_ids: tuple[str, ...] | None = None
        if event_id is None:
            if room_version.event_id_format is EventIdFormat.V1:
                raw = pdu.get("event_id")
                if not isinstance(raw, str):
                    raise ValueError("v1/v2 PDU has no event_id")
                event_id = raw
            else:
                event_id = event_id_from_reference_hash(self.reference_hash(), room_version)
        self.event_id: str = event_id

    @classmethod
    def from_pdu(
        cls, pdu: Mapping[str, Any], room_version: RoomVersion, *, event_id: str | None = None
    ) -> Event:
        """Wrap a (copied, top-level) PDU; pass ``event_id`` when already known (storage)."""
        return cls(dict(pdu), room_version, event_id=event_id)

    # -- raw JSON -------------------------------------------------------------

    @property
    def pdu(self) -> Mapping[str, Any]:
        """The PDU JSON exactly as received or built (do not mutate)."""
        return self._pdu

    def get(self, key: str, default: Any = None) -> Any:
        """A raw top-level field."""
        return self._pdu.get(key, default)

    def redacted_pdu(self) -> dict[str, Any]:
        """The redacted PDU (cached; do not mutate)."""
        if self._redacted is None:
            self._redacted = redact(self._pdu, self.room_version)
        return self._redacted

    def signing_bytes(self) -> bytes:
        """Canonical JSON of the redacted PDU minus signatures/unsigned (cached)."""
        if self._signing_bytes is None:
            self._signing_bytes = signing_bytes(self.redacted_pdu())
        return self._signing_bytes

    def reference_hash(self) -> bytes:
        """SHA-256 reference hash (s2s "Calculating the reference hash for an event")."""
        return hashlib.sha256(self.signing_bytes()).digest()

    def release_derived(self) -> None:
        """Forget what is derived from the PDU and cached (recomputed on demand).

        Once an event is built or checked and stored, the redacted form and signing
        bytes are not read again on the common paths, and the referenced IDs are
        cheap to read again; an event held in a cache keeps only its PDU (about a
        third less memory for a message).
        """
        self._redacted = None
        self._signing_bytes = None
        self._prev_event_ids = None
        self._auth_event_ids = None

    def redacted(self) -> Event:
        """This event with the redaction algorithm applied (same event ID)."""
        ev = Event(
            dict(self.redacted_pdu()),
            self.room_version,
            event_id=self.event_id,
            rejected_reason=self.rejected_reason,
        )
        ev._signing_bytes = self._signing_bytes
        return ev

    def with_rejection(self, reason: str | None) -> Event:
        """A copy marked as rejected (or not), sharing the PDU."""
        ev = Event(self._pdu, self.room_version, event_id=self.event_id, rejected_reason=reason)
        ev._redacted = self._redacted
        ev._signing_bytes = self._signing_bytes
        ev._prev_event_ids = self._prev_event_ids
        ev._auth_event_ids = self._auth_event_ids
        return ev

    # -- typed accessors --------------------------------------------------------

    @property
    def sender(self) -> str:
        value = self._pdu.get("sender")
        return value if isinstance(value, str) else ""

    @property
    def room_id(self) -> str:
        """The room ID; for a v12 create event, its event ID with ``!`` instead of ``$``."""
        if self.room_version.room_id_from_create_event and self.type == "m.room.create":
            if "room_id" not in self._pdu and self.state_key == "":
                return "!" + self.event_id[1:]
        value = self._pdu.get("room_id")
        return value if isinstance(value, str) else ""

    @property
    def is_state(self) -> bool:
        return self.state_key is not None

    @property
    def state_tuple(self) -> tuple[str, str] | None:
        """``(type, state_key)`` for state events, else None."""
        sk = self.state_key
        return None if sk is None else (self.type, sk)

    @property
    def content(self) -> Mapping[str, Any]:
        value = self._pdu.get("content")
        return value if isinstance(value, dict) else _EMPTY

    @property
    def membership(self) -> str | None:
        """``content.membership`` of an ``m.room.member`` event (None if absent)."""
        value = self.content.get("membership")
        return value if isinstance(value, str) else None

    @property
    def depth(self) -> int:
        value = self._pdu.get("depth")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def origin_server_ts(self) -> int:
        value = self._pdu.get("origin_server_ts")
        return value if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def prev_event_ids(self) -> Sequence[str]:
        if self._prev_event_ids is None:
            refs = self._pdu.get("prev_events")
            self._prev_event_ids = _ids_from_refs(refs, self.room_version.event_id_format)
        return self._prev_event_ids

    @property
    def auth_event_ids(self) -> Sequence[str]:
        if self._auth_event_ids is None:
            refs = self._pdu.get("auth_events")
            self._auth_event_ids = _ids_from_refs(refs, self.room_version.event_id_format)
        return self._auth_event_ids

    @property
    def redacts(self) -> str | None:
        """The redacted event's ID: top level before v11, in ``content`` from v11."""
        if self.room_version.redacts_in_content:
            value = self.content.get("redacts")
        else:
            value = self._pdu.get("redacts")
        return value if isinstance(value, str) else None

    @property
    def unsigned(self) -> Mapping[str, Any]:
        value = self._pdu.get("unsigned")
        return value if isinstance(value, dict) else _EMPTY

    @property
    def hashes(self) -> Mapping[str, Any]:
        value = self._pdu.get("hashes")
        return value if isinstance(value, dict) else _EMPTY

    @property
    def signatures(self) -> Mapping[str, Mapping[str, str]]:
        value = self._pdu.get("signatures")
        return value if isinstance(value, dict) else _EMPTY

    def __repr__(self) -> str:
        sk = f", state_key={self.state_key!r}" if self.is_state else ""
        return f"<Event {self.event_id} {self.type}{sk} sender={self.sender}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Event) and other.event_id == self.event_id

    def __hash__(self) -> int:
        return hash(self.event_id)

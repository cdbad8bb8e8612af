"""Building, hashing and signing new local events.

Spec: s2s "Adding hashes and signatures to outgoing events"; each room version's
event format (``pdu_v1``, ``pdu_v3``/``v4``, ``pdu_v6``, ``pdu_v11``, ``pdu_v12``).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .auth_selection import auth_types_for_event
from .event import Event
from .hashing import add_content_hash, generate_v1_event_id
from .room_versions import EventIdFormat, RoomVersion
from .signing import SigningKey, sign_pdu

MAX_DEPTH_STRICT = 2**53 - 1
MAX_DEPTH_LEGACY = 2**63 - 1


@dataclass(frozen=True, slots=True)
class EventBuilder:
    """The fields of an event this server is about to create.

    ``room_id`` must be None for a v12 ``m.room.create`` (its room ID is derived
    from its event ID). ``redacts`` is placed at the top level before v11 and in
    ``content`` from v11 (rooms v11 "Moving the redacts property").
    """

    room_version: RoomVersion
    type: str
    sender: str
    content: Mapping[str, Any]
    room_id: str | None = None
    state_key: str | None = None
    redacts: str | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def auth_types(self) -> set[tuple[str, str]]:
        """State keys whose current events this event should cite as ``auth_events``."""
        return auth_types_for_event(
            self.room_version, self.type, self.sender, self.state_key, self.content
        )

    def build(
        self,
        *,
        prev_event_ids: Sequence[str],
        auth_event_ids: Sequence[str],
        depth: int,
        server_name: str,
        signing_key: SigningKey,
        origin_server_ts: int | None = None,
        reference_hashes: Mapping[str, str] | None = None,
        v1_event_id: str | None = None,
    ) -> Event:
        """Assemble the PDU, add the content hash, sign it and compute the event ID.

        ``reference_hashes`` (event ID -> unpadded base64 SHA-256) fills the
        ``[id, {"sha256": ...}]`` pairs of v1/v2 PDUs; ``v1_event_id`` overrides the
        random ``$opaque:server`` ID of v1/v2.
        """
        rv = self.room_version
        limit = MAX_DEPTH_STRICT if rv.strict_canonical_json else MAX_DEPTH_LEGACY
        content = dict(self.content)
        pdu: dict[str, Any] = dict(self.extra)
        # The room ID and type come from the request path, a new string each time:
        # interned, the events of a room held in caches share one of each.
        pdu.update(
            {
                "type": sys.intern(self.type),
                "sender": self.sender,
                "content": content,
                "depth": min(depth, limit),
                "origin_server_ts": (
                    int(time.time() * 1000) if origin_server_ts is None else origin_server_ts
                ),
            }
        )
        is_v12_create = rv.room_id_from_create_event and self.type == "m.room.create"
        if not is_v12_create:
            if self.room_id is None:
                raise ValueError("room_id is required")
            pdu["room_id"] = sys.intern(self.room_id)
        if self.state_key is not None:
            pdu["state_key"] = self.state_key
        if self.redacts is not None:
            if rv.redacts_in_content:
                content["redacts"] = self.redacts
            else:
                pdu["redacts"] = self.redacts
        if rv.event_id_format is EventIdFormat.V1:
            hashes = reference_hashes or {}
            pdu["prev_events"] = [[e, _hash_obj(hashes, e)] for e in prev_event_ids]
            pdu["auth_events"] = [[e, _hash_obj(hashes, e)] for e in auth_event_ids]
            pdu["event_id"] = v1_event_id or generate_v1_event_id(server_name)
        else:
            pdu["prev_events"] = list(prev_event_ids)
            pdu["auth_events"] = list(auth_event_ids)
        return hash_and_sign(pdu, rv, server_name, signing_key)


def _hash_obj(hashes: Mapping[str, str], event_id: str) -> dict[str, str]:
    ref = hashes.get(event_id)
    return {"sha256": ref} if ref is not None else {}


def hash_and_sign(
    pdu: dict[str, Any], room_version: RoomVersion, server_name: str, signing_key: SigningKey
) -> Event:
    """Add the content hash and ``server_name``'s signature to ``pdu``; wrap as Event.

    Spec: s2s "Adding hashes and signatures to outgoing events". ``pdu`` is updated in
    place and owned by the returned event.
    """
    pdu.pop("signatures", None)
    add_content_hash(pdu)
    pdu["signatures"] = {}
    # The signature covers the redacted form, which does not include ``signatures``,
    # so the event ID (reference hash) is unaffected by signing.
    event = Event(pdu, room_version)
    sign_pdu(pdu, event, server_name, signing_key)
    return event

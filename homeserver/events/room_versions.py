"""Room versions 1 to 12 as data.

Each version is a frozen set of rule flags built from the previous one with
:func:`dataclasses.replace`, so the differences between versions read as a list
(spec: ``rooms/v1`` .. ``rooms/v12``).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class EventIdFormat(enum.Enum):
    """How event IDs are formed (spec: the "Event IDs" section of each room version)."""

    V1 = "v1"  # ``$opaque:domain``, carried in the ``event_id`` field (v1, v2)
    V3 = "v3"  # ``$`` + unpadded standard base64 of the reference hash (v3)
    V4 = "v4"  # ``$`` + unpadded URL-safe base64 of the reference hash (v4+)


class RedactionRules(enum.Enum):
    """Which redaction algorithm applies (spec: the ``*-redactions`` fragments)."""

    V1 = "v1"  # v1-v5: keeps m.room.aliases ``aliases``
    V6 = "v6"  # v6-v7: drops m.room.aliases from the protected content
    V8 = "v8"  # v8: join_rules also keeps ``allow``
    V9 = "v9"  # v9-v10: member also keeps ``join_authorised_via_users_server``
    V11 = "v11"  # v11+: fewer top-level keys, whole create content, redacts, invite


class StateResAlgorithm(enum.Enum):
    """Which state resolution algorithm applies."""

    V1 = "v1"  # room version 1
    V2 = "v2"  # room versions 2-11
    V2_1 = "v2.1"  # room version 12


@dataclass(frozen=True, slots=True)
class RoomVersion:
    """The rules of one room version.

    Flags are named for the behaviour they switch; see the module docstring.
    """

    identifier: str
    stable: bool
    event_id_format: EventIdFormat
    redaction_rules: RedactionRules
    state_res: StateResAlgorithm
    # v1-v2: events must also be signed by the server in the event ID (s2s "Validating
    # hashes and signatures on received events").
    event_id_domain_signature: bool
    # v1-v2: auth rule 11, redactions need the redact level or the same event ID domain.
    redaction_auth_rule: bool
    # v1-v5: the m.room.aliases auth rule (rule 4) exists.
    aliases_auth_rule: bool
    # v6+: the power levels auth rules also cover ``notifications``.
    notifications_power_levels: bool
    # v5+: signing keys must be valid at origin_server_ts (enforced by key fetching).
    enforce_key_validity: bool
    # v6+: strict canonical JSON (integers in range, no floats), depth limit 2^53-1.
    strict_canonical_json: bool
    # v1-v5: power level values may be floats (truncated).
    float_power_levels: bool
    # v10+: power level values must be integers (no strings).
    integer_only_power_levels: bool
    # v7+: ``knock`` membership and join rule.
    knocking: bool
    # v8+: ``restricted`` join rule and join_authorised_via_users_server.
    restricted_joins: bool
    # v10+: ``knock_restricted`` join rule.
    knock_restricted: bool
    # v11+: the creator is the create event's sender; ``content.creator`` not required.
    implicit_room_creator: bool
    # v11+: ``redacts`` lives in ``content`` rather than at the top level.
    redacts_in_content: bool
    # v12: room creators (sender + additional_creators) have infinite power.
    privileged_creators: bool
    # v12: ``additional_creators`` in the create event content.
    additional_creators: bool
    # v12: room ID is the create event's ID with ``!``; create has no room_id and is
    # not cited in auth_events.
    room_id_from_create_event: bool

    @property
    def create_event_in_auth_events(self) -> bool:
        """Whether ``m.room.create`` is selected for ``auth_events`` (not from v12)."""
        return not self.room_id_from_create_event

    def __str__(self) -> str:
        return self.identifier


V1 = RoomVersion(
    identifier="1",
    stable=True,
    event_id_format=EventIdFormat.V1,
    redaction_rules=RedactionRules.V1,
    state_res=StateResAlgorithm.V1,
    event_id_domain_signature=True,
    redaction_auth_rule=True,
    aliases_auth_rule=True,
    notifications_power_levels=False,
    enforce_key_validity=False,
    strict_canonical_json=False,
    float_power_levels=True,
    integer_only_power_levels=False,
    knocking=False,
    restricted_joins=False,
    knock_restricted=False,
    implicit_room_creator=False,
    redacts_in_content=False,
    privileged_creators=False,
    additional_creators=False,
    room_id_from_create_event=False,
)
V2 = replace(V1, identifier="2", state_res=StateResAlgorithm.V2)
V3 = replace(
    V2,
    identifier="3",
    event_id_format=EventIdFormat.V3,
    event_id_domain_signature=False,
    redaction_auth_rule=False,
)
V4 = replace(V3, identifier="4", event_id_format=EventIdFormat.V4)
V5 = replace(V4, identifier="5", enforce_key_validity=True)
V6 = replace(
    V5,
    identifier="6",
    redaction_rules=RedactionRules.V6,
    aliases_auth_rule=False,
    notifications_power_levels=True,
    strict_canonical_json=True,
    float_power_levels=False,
)
V7 = replace(V6, identifier="7", knocking=True)
V8 = replace(V7, identifier="8", redaction_rules=RedactionRules.V8, restricted_joins=True)
V9 = replace(V8, identifier="9", redaction_rules=RedactionRules.V9)
V10 = replace(V9, identifier="10", integer_only_power_levels=True, knock_restricted=True)
V11 = replace(
    V10,
    identifier="11",
    redaction_rules=RedactionRules.V11,
    implicit_room_creator=True,
    redacts_in_content=True,
)
V12 = replace(
    V11,
    identifier="12",
    state_res=StateResAlgorithm.V2_1,
    privileged_creators=True,
    additional_creators=True,
    room_id_from_create_event=True,
)

KNOWN_ROOM_VERSIONS: dict[str, RoomVersion] = {
    v.identifier: v for v in (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12)
}
"""Every room version this server implements, by identifier."""

STABLE_ROOM_VERSIONS: frozenset[str] = frozenset(
    ident for ident, v in KNOWN_ROOM_VERSIONS.items() if v.stable
)
"""Identifiers of the versions the spec lists as stable (rooms/_index "Complete list")."""

RECOMMENDED_ROOM_VERSION: RoomVersion = V12
"""Servers SHOULD use room version 12 for new rooms (rooms/_index)."""

"""Signature checks on events (s2s "Validating hashes and signatures")."""

from __future__ import annotations

from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    Event,
    ServerKey,
    key_ids_to_fetch,
    required_signers,
    verify_event_signatures,
)

from .room_builder import RoomBuilder, key_lookup, signing_key_for

V = KNOWN_ROOM_VERSIONS


def test_valid_event_verifies() -> None:
    room = RoomBuilder(V["11"]).create_room()
    room.join("@bob:b.test")
    msg = room.message("@bob:b.test", "hi")
    assert required_signers(msg) == {"b.test"}
    assert key_ids_to_fetch(msg) == {"b.test": {"ed25519:1"}}
    assert verify_event_signatures(msg, key_lookup) == []


def test_tampered_redacted_field_fails() -> None:
    room = RoomBuilder(V["11"]).create_room()
    msg = room.message(room.creator, "hi")
    pdu = dict(msg.pdu)
    pdu["origin_server_ts"] += 1
    ev = Event(pdu, V["11"], event_id=msg.event_id)
    failures = verify_event_signatures(ev, key_lookup)
    assert [f.server_name for f in failures] == ["a.test"]


def test_missing_signature_and_unknown_key() -> None:
    room = RoomBuilder(V["11"]).create_room()
    msg = room.message(room.creator, "hi")
    pdu = dict(msg.pdu)
    pdu["signatures"] = {}
    ev = Event(pdu, V["11"], event_id=msg.event_id)
    assert verify_event_signatures(ev, key_lookup)[0].server_name == "a.test"
    assert verify_event_signatures(msg, lambda s, k: None)


def test_v1_needs_event_id_domain_signature() -> None:
    room = RoomBuilder(V["1"]).create_room()
    room.join("@bob:b.test")
    msg = room.message("@bob:b.test", "hi")
    pdu = dict(msg.pdu)
    pdu["event_id"] = "$other:c.test"
    ev = Event(pdu, V["1"])
    assert required_signers(ev) == {"b.test", "c.test"}
    failures = verify_event_signatures(ev, key_lookup)
    # the event ID is covered by the signature in v1, so b.test fails as well
    assert [f.server_name for f in failures] == ["b.test", "c.test"]


def test_expired_key_is_skipped_from_v5() -> None:
    room = RoomBuilder(V["5"]).create_room()
    msg = room.message(room.creator, "hi")

    def expired(server: str, key_id: str) -> ServerKey | None:
        return ServerKey(signing_key_for(server).verify_key, valid_until_ts=0)

    assert verify_event_signatures(msg, expired)
    room4 = RoomBuilder(V["4"]).create_room()
    assert verify_event_signatures(room4.message(room4.creator, "x"), expired) == []


def test_restricted_join_needs_authoriser_signature() -> None:
    room = RoomBuilder(V["9"]).create_room()
    room.join_rules(room.creator, "restricted", allow=[])
    join = room.join("@bob:b.test", join_authorised_via_users_server=room.creator, check=False)
    assert required_signers(join) == {"a.test", "b.test"}
    assert [f.server_name for f in verify_event_signatures(join, key_lookup)] == ["a.test"]


def test_third_party_invite_does_not_need_sender_server() -> None:
    room = RoomBuilder(V["10"]).create_room()
    invite = room.member(
        room.creator,
        "@carol:c.test",
        "invite",
        third_party_invite={"signed": {"mxid": "@carol:c.test", "token": "t"}},
        check=False,
    )
    assert required_signers(invite) == set()

"""Signature checks on events (s2s "Validating hashes and signatures")."""

from __future__ import annotations

import pytest

from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    AuthError,
    Event,
    RoomVersion,
    ServerKey,
    check_auth,
    key_ids_to_fetch,
    required_signers,
    sign_event_pdu,
    verify_event_signatures,
)

from .auth_helpers import ALICE, BOB, cosign, member
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


RESTRICTED = [v for v in V.values() if v.restricted_joins]


@pytest.mark.parametrize("rv", RESTRICTED, ids=[v.identifier for v in RESTRICTED])
def test_authoriser_signature_checked_by_auth_and_signature_checks_together(
    rv: RoomVersion,
) -> None:
    """v8+ auth rule: a join with ``join_authorised_via_users_server`` must be validly
    signed by that user's server. The auth rules (pure, without keys) only see whether
    a signature from that server is present; verifying it is left to the receipt
    checks, so ``verify_event_signatures`` must require that server. Together they
    accept only a join the authorising server really signed."""
    room = RoomBuilder(rv).create_room()
    room.join_rules(ALICE, "restricted", allow=[{"type": "m.room_membership", "room_id": "!o:x"}])
    unsigned = member(room, BOB, BOB, "join", join_authorised_via_users_server=ALICE)
    assert required_signers(unsigned) == {"a.test", "b.test"}
    state = room.auth_state_for(unsigned)

    signed = cosign(unsigned, "a.test")
    assert verify_event_signatures(signed, key_lookup) == []
    check_auth(signed, state)

    assert [f.server_name for f in verify_event_signatures(unsigned, key_lookup)] == ["a.test"]
    with pytest.raises(AuthError) as info:
        check_auth(unsigned, state)
    assert info.value.rule == "member.authoriser_signed"

    # an a.test signature made with another key: present, so auth alone lets it
    # through, and the signature check is what rejects it
    pdu = dict(unsigned.pdu)
    pdu["signatures"] = {k: dict(v) for k, v in unsigned.signatures.items()}
    sign_event_pdu(pdu, rv, "a.test", signing_key_for("forger.test"))
    forged = Event(pdu, rv, event_id=unsigned.event_id)
    check_auth(forged, state)
    failures = verify_event_signatures(forged, key_lookup)
    assert [f.server_name for f in failures] == ["a.test"]
    assert "bad signature" in failures[0].reason


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

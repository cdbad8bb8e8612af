"""The Event model, event IDs of every format, hashes, the builder and validation."""

from __future__ import annotations

import pytest

from homeserver.events import (
    KNOWN_ROOM_VERSIONS,
    Event,
    EventValidationError,
    check_content_hash,
    compute_event_id,
    event_after_hash_check,
    validate_pdu,
    verify_event_signatures,
)
from homeserver.events.canonical import encode_base64

from .room_builder import RoomBuilder, key_lookup

V = KNOWN_ROOM_VERSIONS


def test_v1_event_ids_and_reference_pairs() -> None:
    room = RoomBuilder(V["1"]).create_room()
    msg = room.message(room.creator, "hi")
    assert msg.event_id == msg.pdu["event_id"]
    assert msg.event_id.endswith(":a.test")
    pairs = msg.pdu["auth_events"]
    assert all(isinstance(p, list) and len(p) == 2 for p in pairs)
    assert list(msg.auth_event_ids) == [p[0] for p in pairs]
    for ev_id, hashes in pairs:
        assert hashes == {"sha256": encode_base64(room.events[ev_id].reference_hash())}


@pytest.mark.parametrize(("version", "alphabet"), [("3", "+/"), ("4", "-_"), ("11", "-_")])
def test_hash_event_ids(version: str, alphabet: str) -> None:
    room = RoomBuilder(V[version]).create_room()
    for _ in range(20):
        msg = room.message(room.creator, "x" * _)
        body = msg.event_id[1:]
        assert msg.event_id.startswith("$") and len(body) == 43 and ":" not in body
        other = {"+/": "-_", "-_": "+/"}[alphabet]
        assert not any(c in body for c in other)
        assert compute_event_id(msg.pdu, V[version]) == msg.event_id
        assert "event_id" not in msg.pdu


def test_event_id_ignores_signatures_and_unsigned() -> None:
    room = RoomBuilder(V["10"]).create_room()
    msg = room.message(room.creator, "hi")
    pdu = dict(msg.pdu)
    pdu["unsigned"] = {"age": 5}
    pdu["signatures"] = {"other": {"ed25519:x": "y"}}
    assert compute_event_id(pdu, V["10"]) == msg.event_id


def test_accessors_and_unknown_fields_kept() -> None:
    room = RoomBuilder(V["10"]).create_room()
    msg = room.add("m.room.message", room.creator, {"body": "x"})
    pdu = dict(msg.pdu)
    pdu["future_field"] = {"a": 1}
    ev = Event.from_pdu(pdu, V["10"])
    assert ev.pdu["future_field"] == {"a": 1}
    assert ev.state_key is None and not ev.is_state
    assert ev.sender == room.creator and ev.room_id == room.room_id
    assert ev.depth == msg.depth and ev.origin_server_ts == msg.origin_server_ts
    assert list(ev.prev_event_ids) == list(msg.prev_event_ids)
    assert ev.hashes["sha256"] and ev.signatures["a.test"]


def test_redacts_location_by_version() -> None:
    for version in ("10", "11"):
        room = RoomBuilder(V[version]).create_room()
        msg = room.message(room.creator, "x")
        red = room.add("m.room.redaction", room.creator, {}, redacts=msg.event_id)
        assert red.redacts == msg.event_id
        if version == "10":
            assert red.pdu["redacts"] == msg.event_id and "redacts" not in red.content
        else:
            assert red.content["redacts"] == msg.event_id and "redacts" not in red.pdu


def test_v12_create_event_room_id() -> None:
    room = RoomBuilder(V["12"]).create_room()
    create = room.events[room.state[("m.room.create", "")]]
    assert "room_id" not in create.pdu
    assert create.room_id == "!" + create.event_id[1:] == room.room_id
    msg = room.message(room.creator, "x")
    assert msg.room_id == room.room_id
    assert create.event_id not in msg.auth_event_ids


def test_content_hash_mismatch_keeps_redacted() -> None:
    room = RoomBuilder(V["10"]).create_room()
    msg = room.message(room.creator, "secret")
    assert check_content_hash(msg.pdu)
    tampered = dict(msg.pdu)
    tampered["content"] = {"body": "changed"}
    ev = Event.from_pdu(tampered, V["10"])
    assert ev.event_id == msg.event_id  # the content is not part of the reference hash
    assert verify_event_signatures(ev, key_lookup) == []  # signatures cover the redacted form
    kept = event_after_hash_check(ev)
    assert kept.content == {} and kept.event_id == msg.event_id
    assert event_after_hash_check(msg) is msg


def test_validation_accepts_built_events() -> None:
    for rv in V.values():
        room = RoomBuilder(rv).create_room()
        for ev in list(room.events.values()):
            validate_pdu(ev.pdu, rv)


def _good_pdu(version: str) -> dict[str, object]:
    room = RoomBuilder(V[version]).create_room()
    return dict(room.message(room.creator, "x").pdu)


@pytest.mark.parametrize(
    ("version", "change"),
    [
        ("10", {"type": None}),
        ("10", {"sender": "not-a-user"}),
        ("10", {"depth": "1"}),
        ("10", {"depth": 2**53}),
        ("10", {"content": {"n": 1.5}}),
        ("10", {"content": {"n": 2**53}}),
        ("10", {"state_key": 5}),
        ("10", {"state_key": "x" * 256}),
        ("10", {"type": "t" * 256}),
        ("10", {"room_id": "nope"}),
        ("10", {"prev_events": ["$a"] * 21}),
        ("10", {"auth_events": ["$a"] * 11}),
        ("10", {"prev_events": [["$a:x", {}]]}),
        ("10", {"content": {"big": "x" * 65536}}),
        ("10", {"hashes": {}}),
        ("1", {"event_id": None}),
        ("1", {"prev_events": ["$a:x"]}),
        ("12", {"room_id": "!a:x"}),
    ],
)
def test_validation_rejects(version: str, change: dict[str, object]) -> None:
    pdu = _good_pdu(version)
    for key, value in change.items():
        if value is None:
            pdu.pop(key, None)
        else:
            pdu[key] = value
    with pytest.raises(EventValidationError):
        validate_pdu(pdu, V[version])


def test_legacy_versions_allow_floats_and_big_ints() -> None:
    pdu = _good_pdu("5")
    pdu["content"] = {"n": 1.5, "m": 2**60}
    validate_pdu(pdu, V["5"])


def test_v12_create_without_room_id_is_valid() -> None:
    room = RoomBuilder(V["12"]).create_room()
    create = room.events[room.state[("m.room.create", "")]]
    validate_pdu(create.pdu, V["12"])

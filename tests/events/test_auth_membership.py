"""Authorisation rules for m.room.member events, per version where they differ."""

from __future__ import annotations

from typing import Any

import pytest
from nacl.signing import SigningKey

from homeserver.events import KNOWN_ROOM_VERSIONS, RoomVersion, encode_base64, sign_json

from .auth_helpers import ALICE, BOB, CAROL, allowed, cosign, member, rejected
from .room_builder import RoomBuilder

V = KNOWN_ROOM_VERSIONS
ALL = list(V.values())
ids = [v.identifier for v in ALL]


def room_for(rv: RoomVersion, **kwargs: Any) -> RoomBuilder:
    return RoomBuilder(rv).create_room(**kwargs)


def users(rv: RoomVersion, **levels: int) -> dict[str, int]:
    base = {} if rv.privileged_creators else {ALICE: 100}
    return {**base, **{f"@{k}:{k[0]}.test": v for k, v in levels.items()}}


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_member_needs_membership(rv: RoomVersion) -> None:
    room = room_for(rv)
    ev = room.fork().add("m.room.member", BOB, {}, BOB, check=False)
    rejected(room, ev, "member.fields")


# -- join ---------------------------------------------------------------------------


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_first_join_of_creator(rv: RoomVersion) -> None:
    room = RoomBuilder(rv)
    room.create()
    allowed(room, member(room, ALICE, ALICE, "join"))  # no join rules yet
    rejected(room, member(room, BOB, BOB, "join"), "member.join.invite_only")


@pytest.mark.parametrize("version", ["10", "11"])
def test_first_join_creator_is_content_creator_before_v11(version: str) -> None:
    rv = V[version]
    room = RoomBuilder(rv)
    room.add("m.room.create", ALICE, {"creator": BOB, "room_version": version}, "")
    alice_join = member(room, ALICE, ALICE, "join")
    bob_join = member(room, BOB, BOB, "join")
    if rv.implicit_room_creator:
        allowed(room, alice_join)
        rejected(room, bob_join)
    else:
        rejected(room, alice_join)
        allowed(room, bob_join)


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_join_public_and_sender_mismatch(rv: RoomVersion) -> None:
    room = room_for(rv)
    allowed(room, member(room, BOB, BOB, "join"))
    rejected(room, member(room, ALICE, BOB, "join"), "member.join.sender")


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_join_banned(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.ban(ALICE, BOB)
    rejected(room, member(room, BOB, BOB, "join"), "member.join.banned")


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_join_invite_only(rv: RoomVersion) -> None:
    room = room_for(rv, public=False)
    rejected(room, member(room, BOB, BOB, "join"), "member.join.invite_only")
    room.invite(ALICE, BOB)
    allowed(room, member(room, BOB, BOB, "join"))


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_join_rule_knock(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.join_rules(ALICE, "knock")
    room.invite(ALICE, BOB)
    if rv.knocking:
        allowed(room, member(room, BOB, BOB, "join"))
        rejected(room, member(room, CAROL, CAROL, "join"), "member.join.invite_only")
    else:
        rejected(room, member(room, BOB, BOB, "join"), "member.join.rule")


@pytest.mark.parametrize("rule", ["restricted", "knock_restricted"])
@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_restricted_join(rv: RoomVersion, rule: str) -> None:
    room = room_for(rv)
    room.join(CAROL)
    room.join_rules(ALICE, rule, allow=[{"type": "m.room_membership", "room_id": "!o:x"}])
    supported = rv.knock_restricted if rule == "knock_restricted" else rv.restricted_joins
    via_alice = cosign(
        member(room, BOB, BOB, "join", join_authorised_via_users_server=ALICE), "a.test"
    )
    if not supported:
        rejected(room, member(room, BOB, BOB, "join"), "member.join.rule")
        return
    allowed(room, via_alice)
    rejected(room, member(room, BOB, BOB, "join"), "member.join.restricted")
    # carol is joined but below the invite level
    room.power_levels(ALICE, users=users(rv), invite=50)
    via_carol = cosign(
        member(room, BOB, BOB, "join", join_authorised_via_users_server=CAROL), "c.test"
    )
    rejected(room, via_carol, "member.join.restricted")
    # a non-member cannot authorise
    via_dave = cosign(
        member(room, BOB, BOB, "join", join_authorised_via_users_server="@dave:d.test"), "d.test"
    )
    rejected(room, via_dave, "member.join.restricted")
    # not signed by the authorising server
    unsigned = member(room, BOB, BOB, "join", join_authorised_via_users_server=ALICE)
    rejected(room, unsigned, "member.authoriser_signed")
    # already invited: no authoriser needed
    room.invite(ALICE, BOB)
    allowed(room, member(room, BOB, BOB, "join"))


# -- invite --------------------------------------------------------------------------


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_invite(rv: RoomVersion) -> None:
    room = room_for(rv)
    allowed(room, member(room, ALICE, BOB, "invite"))
    rejected(room, member(room, CAROL, BOB, "invite"), "member.invite.sender_joined")
    room.join(CAROL)
    room.power_levels(ALICE, users=users(rv), invite=10)
    rejected(room, member(room, CAROL, BOB, "invite"), "member.invite.level")
    room.join(BOB)
    rejected(room, member(room, ALICE, BOB, "invite"), "member.invite.target")
    room.ban(ALICE, BOB)
    rejected(room, member(room, ALICE, BOB, "invite"), "member.invite.target")


def _third_party_room(rv: RoomVersion) -> tuple[RoomBuilder, SigningKey, dict[str, Any]]:
    room = room_for(rv)
    identity_key = SigningKey(b"\x07" * 32)
    identity_key.alg = "ed25519"  # type: ignore[attr-defined]
    identity_key.version = "0"  # type: ignore[attr-defined]
    public = encode_base64(bytes(identity_key.verify_key))
    room.add(
        "m.room.third_party_invite",
        ALICE,
        {"display_name": "c...", "public_keys": [{"public_key": public}], "key_validity_url": ""},
        "tok",
    )
    signed = sign_json({"mxid": BOB, "token": "tok"}, "id.test", identity_key)
    return room, identity_key, signed


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_third_party_invite(rv: RoomVersion) -> None:
    room, _identity_key, signed = _third_party_room(rv)

    def invite(sender: str, content_signed: Any) -> Any:
        return member(room, sender, BOB, "invite", third_party_invite={"signed": content_signed})

    allowed(room, invite(ALICE, signed))
    rejected(room, member(room, ALICE, BOB, "invite", third_party_invite={}), "member.3pid.signed")
    rejected(room, invite(ALICE, {"mxid": BOB}), "member.3pid.fields")
    rejected(room, invite(ALICE, {**signed, "mxid": CAROL}), "member.3pid.mxid")
    rejected(room, invite(ALICE, {**signed, "token": "other"}), "member.3pid.no_invite")
    forged = sign_json({"mxid": BOB, "token": "tok"}, "id.test", _key(b"\x08"))
    rejected(room, invite(ALICE, forged), "member.3pid.signature")
    room.join(CAROL)
    room.power_levels(ALICE, users=users(rv, carol=100))
    rejected(room, invite(CAROL, signed), "member.3pid.sender")
    room.ban(ALICE, BOB)
    rejected(room, invite(ALICE, signed), "member.3pid.banned")


def _key(seed: bytes) -> Any:
    key = SigningKey(seed * 32)
    key.alg = "ed25519"  # type: ignore[attr-defined]
    key.version = "0"  # type: ignore[attr-defined]
    return key


def test_third_party_invite_single_public_key() -> None:
    rv = V["1"]
    room = room_for(rv)
    key = _key(b"\x09")
    room.add(
        "m.room.third_party_invite",
        ALICE,
        {"public_key": encode_base64(bytes(key.verify_key))},
        "t2",
    )
    signed = sign_json({"mxid": BOB, "token": "t2"}, "id.test", key)
    allowed(room, member(room, ALICE, BOB, "invite", third_party_invite={"signed": signed}))


# -- leave, kick, ban, knock -----------------------------------------------------------


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_leave_self(rv: RoomVersion) -> None:
    room = room_for(rv)
    rejected(room, member(room, BOB, BOB, "leave"), "member.leave.self")
    room.invite(ALICE, BOB)
    allowed(room, member(room, BOB, BOB, "leave"))  # rejecting an invite
    room.join(BOB)
    allowed(room, member(room, BOB, BOB, "leave"))


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_leave_after_knock(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.join_rules(ALICE, "knock")
    if not rv.knocking:
        rejected(room, member(room, BOB, BOB, "knock"), "member.unknown")
        return
    room.member(BOB, BOB, "knock")
    allowed(room, member(room, BOB, BOB, "leave"))


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_kick(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.join(BOB)
    room.join(CAROL)
    allowed(room, member(room, ALICE, BOB, "leave"))
    rejected(room, member(room, CAROL, BOB, "leave"), "member.leave.kick_level")
    rejected(room, member(room, "@dave:d.test", BOB, "leave"), "member.leave.sender_joined")
    room.power_levels(ALICE, users=users(rv, carol=50, bob=50))
    rejected(room, member(room, CAROL, BOB, "leave"), "member.leave.kick_level")


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_unban_needs_ban_level(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.join(CAROL)
    room.ban(ALICE, BOB)
    room.power_levels(ALICE, users=users(rv, carol=60), kick=50, ban=70)
    rejected(room, member(room, CAROL, BOB, "leave"), "member.leave.unban_level")
    allowed(room, member(room, ALICE, BOB, "leave"))


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_ban(rv: RoomVersion) -> None:
    room = room_for(rv)
    room.join(BOB)
    room.join(CAROL)
    allowed(room, member(room, ALICE, BOB, "ban"))
    rejected(room, member(room, CAROL, BOB, "ban"), "member.ban.level")
    rejected(room, member(room, "@dave:d.test", BOB, "ban"), "member.ban.sender_joined")
    rejected(room, member(room, BOB, ALICE, "ban"), "member.ban.level")


@pytest.mark.parametrize("rule", ["knock", "knock_restricted", "public"])
@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_knock(rv: RoomVersion, rule: str) -> None:
    room = room_for(rv)
    room.join_rules(ALICE, rule)
    knock = member(room, BOB, BOB, "knock")
    if not rv.knocking:
        rejected(room, knock, "member.unknown")
        return
    if rule == "public" or (rule == "knock_restricted" and not rv.knock_restricted):
        rejected(room, knock, "member.knock.rule")
        return
    allowed(room, knock)
    rejected(room, member(room, ALICE, BOB, "knock"), "member.knock.sender")
    room.invite(ALICE, BOB)
    rejected(room, member(room, BOB, BOB, "knock"), "member.knock.membership")


@pytest.mark.parametrize("rv", ALL, ids=ids)
def test_unknown_membership(rv: RoomVersion) -> None:
    room = room_for(rv)
    rejected(room, member(room, BOB, BOB, "dance"), "member.unknown")

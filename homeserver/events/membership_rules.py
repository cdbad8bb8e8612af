"""Authorisation rules for ``m.room.member`` events.

Spec: rule "If type is m.room.member" of each room version's authorisation rules
(rooms ``v1-auth-rules``; v7 adds knocking, ``v8-auth-rules`` restricted joins,
v10 ``knock_restricted``, v11 creator from sender). Rule ids are stable names like
``member.join.banned`` rather than numbers, since numbering shifts between versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .errors import AuthError
from .event import Event
from .identifiers import server_name_of
from .power_levels import PowerLevels
from .room_versions import RoomVersion
from .signing import verify_signed_with_public_key

AuthState = Mapping[tuple[str, str], Event]


def membership_of(state: AuthState, user_id: str) -> str | None:
    """The user's current membership in ``state`` (None if no member event)."""
    ev = state.get(("m.room.member", user_id))
    return ev.membership if ev is not None else None


def join_rule_of(state: AuthState) -> str:
    """The current join rule; ``invite`` when there is no join rules event."""
    ev = state.get(("m.room.join_rules", ""))
    if ev is None:
        return "invite"
    rule = ev.content.get("join_rule")
    return rule if isinstance(rule, str) else ""


def check_member_event(
    event: Event,
    state: AuthState,
    create: Event,
    levels: PowerLevels,
    rv: RoomVersion,
) -> None:
    """Allow (return) or reject (raise :class:`AuthError`) an ``m.room.member`` event."""
    target = event.state_key
    membership = event.content.get("membership")
    if target is None or not isinstance(membership, str):
        raise AuthError("member.fields", "no state_key or no membership")
    content = event.content
    if rv.restricted_joins and "join_authorised_via_users_server" in content:
        _check_authoriser_signed(event, content["join_authorised_via_users_server"])
    if membership == "join":
        _check_join(event, target, state, create, levels, rv)
    elif membership == "invite":
        _check_invite(event, target, state, levels)
    elif membership == "leave":
        _check_leave(event, target, state, levels, rv)
    elif membership == "ban":
        _check_ban(event, target, state, levels)
    elif membership == "knock" and rv.knocking:
        _check_knock(event, target, state, rv)
    else:
        raise AuthError("member.unknown", f"unknown membership {membership!r}")


def _check_authoriser_signed(event: Event, authoriser: Any) -> None:
    """v8+: the event must be signed by the authorising user's server.

    The cryptographic check is done with the other signatures
    (:func:`~.signing.verify_event_signatures` requires that server); here we check
    the signature is present, so an event lacking it is rejected by auth alone.
    """
    if not isinstance(authoriser, str) or ":" not in authoriser:
        raise AuthError("member.authoriser_signed", "invalid join_authorised_via_users_server")
    if server_name_of(authoriser) not in event.signatures:
        raise AuthError("member.authoriser_signed", "not signed by the authorising server")


def _check_join(
    event: Event,
    target: str,
    state: AuthState,
    create: Event,
    levels: PowerLevels,
    rv: RoomVersion,
) -> None:
    prevs = event.prev_event_ids
    creator = create.sender if rv.implicit_room_creator else create.content.get("creator")
    if len(prevs) == 1 and prevs[0] == create.event_id and target == creator:
        return
    if event.sender != target:
        raise AuthError("member.join.sender", "sender does not match state_key")
    current = membership_of(state, target)
    if current == "ban":
        raise AuthError("member.join.banned", "sender is banned")
    join_rule = join_rule_of(state)
    if join_rule == "invite" or (rv.knocking and join_rule == "knock"):
        if current in ("invite", "join"):
            return
        raise AuthError("member.join.invite_only", f"join rule is {join_rule}, not invited")
    restricted = (rv.restricted_joins and join_rule == "restricted") or (
        rv.knock_restricted and join_rule == "knock_restricted"
    )
    if restricted:
        if current in ("join", "invite"):
            return
        authoriser = event.content.get("join_authorised_via_users_server")
        if (
            not isinstance(authoriser, str)
            or membership_of(state, authoriser) != "join"
            or levels.user_level(authoriser) < levels.invite
        ):
            raise AuthError(
                "member.join.restricted", "authorising user is not a joined user able to invite"
            )
        return
    if join_rule == "public":
        return
    raise AuthError("member.join.rule", f"join rule {join_rule!r} does not allow joining")


def _check_invite(event: Event, target: str, state: AuthState, levels: PowerLevels) -> None:
    content = event.content
    if "third_party_invite" in content:
        _check_third_party_invite(event, target, state, content["third_party_invite"])
        return
    if membership_of(state, event.sender) != "join":
        raise AuthError("member.invite.sender_joined", "sender is not joined")
    if membership_of(state, target) in ("join", "ban"):
        raise AuthError("member.invite.target", "target is joined or banned")
    if levels.user_level(event.sender) >= levels.invite:
        return
    raise AuthError("member.invite.level", "sender below the invite level")


def _check_third_party_invite(event: Event, target: str, state: AuthState, tpi: Any) -> None:
    if membership_of(state, target) == "ban":
        raise AuthError("member.3pid.banned", "target is banned")
    signed = tpi.get("signed") if isinstance(tpi, Mapping) else None
    if not isinstance(signed, Mapping):
        raise AuthError("member.3pid.signed", "third_party_invite has no signed object")
    mxid, token = signed.get("mxid"), signed.get("token")
    if not isinstance(mxid, str) or not isinstance(token, str):
        raise AuthError("member.3pid.fields", "signed has no mxid or token")
    if mxid != target:
        raise AuthError("member.3pid.mxid", "mxid does not match state_key")
    invite_event = state.get(("m.room.third_party_invite", token))
    if invite_event is None:
        raise AuthError("member.3pid.no_invite", "no m.room.third_party_invite for token")
    if invite_event.sender != event.sender:
        raise AuthError("member.3pid.sender", "sender differs from the third party invite's")
    for key in _public_keys(invite_event.content):
        if verify_signed_with_public_key(signed, key):
            return
    raise AuthError("member.3pid.signature", "no signature matches the invite's public keys")


def _public_keys(content: Mapping[str, Any]) -> list[str]:
    keys: list[str] = []
    single = content.get("public_key")
    if isinstance(single, str):
        keys.append(single)
    many = content.get("public_keys")
    if isinstance(many, list):
        for entry in many:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                keys.append(entry["public_key"])
    return keys


def _check_leave(
    event: Event, target: str, state: AuthState, levels: PowerLevels, rv: RoomVersion
) -> None:
    sender = event.sender
    if sender == target:
        allowed = ("invite", "join", "knock") if rv.knocking else ("invite", "join")
        if membership_of(state, target) in allowed:
            return
        raise AuthError("member.leave.self", "cannot leave without being invited or joined")
    if membership_of(state, sender) != "join":
        raise AuthError("member.leave.sender_joined", "sender is not joined")
    sender_level = levels.user_level(sender)
    if membership_of(state, target) == "ban" and sender_level < levels.ban:
        raise AuthError("member.leave.unban_level", "sender below the ban level")
    if sender_level >= levels.kick and levels.user_level(target) < sender_level:
        return
    raise AuthError("member.leave.kick_level", "sender cannot kick the target")


def _check_ban(event: Event, target: str, state: AuthState, levels: PowerLevels) -> None:
    sender = event.sender
    if membership_of(state, sender) != "join":
        raise AuthError("member.ban.sender_joined", "sender is not joined")
    sender_level = levels.user_level(sender)
    if sender_level >= levels.ban and levels.user_level(target) < sender_level:
        return
    raise AuthError("member.ban.level", "sender cannot ban the target")


def _check_knock(event: Event, target: str, state: AuthState, rv: RoomVersion) -> None:
    join_rule = join_rule_of(state)
    if not (join_rule == "knock" or (rv.knock_restricted and join_rule == "knock_restricted")):
        raise AuthError("member.knock.rule", f"join rule {join_rule!r} does not allow knocking")
    if event.sender != target:
        raise AuthError("member.knock.sender", "sender does not match state_key")
    if membership_of(state, event.sender) not in ("ban", "invite", "join"):
        return
    raise AuthError("member.knock.membership", "sender is banned, invited or joined")

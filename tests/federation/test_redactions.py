"""Redactions received over federation: one that can act on its target redacts it
and clients see both (``unsigned.redacted_by``); one that never can (its target is
in another room, is the create event, or it comes from another server's user
without the redact level) is stored but kept from clients, and the target stays
whole (as Synapse withholds such redactions)."""

from __future__ import annotations

from typing import Any

from tests.federation.rooms import (
    bootstrap_room,
    build_pdu,
    remote_join,
    send_txn,
    settle,
    share_room,
)
from tests.federation.servers import ServerFactory
from tests.rooms.helpers import User


async def _timeline(user: User, room_id: str) -> list[Any]:
    answer = await user.request("GET", f"/rooms/{room_id}/messages?dir=b&limit=50")
    return list(answer["chunk"])


async def _event(user: User, room_id: str, event_id: str) -> Any:
    return await user.request("GET", f"/rooms/{room_id}/event/{event_id}")


async def test_redactions_that_cannot_act_are_withheld(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b, room_version="11")
    other_room = await alice.create_room(preset="public_chat", room_version="11")
    await bootstrap_room(a, b, other_room)
    await remote_join(b, bob.user_id, other_room)
    await settle(a, b)
    hello = await alice.send(room_id, "hello")
    elsewhere = await bob.send(other_room, "in the other room")
    await settle(a, b)
    create_id = (await a.server.stores.state.get_current_state(room_id))[("m.room.create", "")]

    withheld = []
    for target in (hello, elsewhere, create_id):
        # bob (of b, power level 0) claims to redact it: allowed by the auth rules
        # (room versions 3+ check the redaction when applying it), never applied
        pdu = await build_pdu(
            b.server, room_id, "m.room.redaction", bob.user_id, {"redacts": target}
        )
        answer = await send_txn(b, a, [pdu.pdu])
        assert answer["pdus"][pdu.event_id] == {}
        stored = await a.server.stores.events.get_event(pdu.event_id)
        assert stored is not None and stored.rejected_reason is None and stored.soft_failed
        withheld.append(pdu.event_id)

    shown = {e["event_id"] for e in await _timeline(alice, room_id)}
    assert not shown & set(withheld)
    assert (await _event(alice, room_id, hello))["content"]["body"] == "hello"
    assert "redacted_by" not in (await _event(alice, room_id, hello))["unsigned"]
    assert (await _event(alice, other_room, elsewhere))["content"]["body"] == "in the other room"
    assert (await _event(alice, room_id, create_id))["content"] != {}

    # bob may redact his own message: applied, and clients see both
    own = await bob.send(room_id, "oops")
    await settle(a, b)
    pdu = await build_pdu(b.server, room_id, "m.room.redaction", bob.user_id, {"redacts": own})
    answer = await send_txn(b, a, [pdu.pdu])
    assert answer["pdus"][pdu.event_id] == {}
    served = await _event(alice, room_id, own)
    assert served["content"] == {}
    assert served["unsigned"]["redacted_by"] == pdu.event_id
    assert served["unsigned"]["redacted_because"]["event_id"] == pdu.event_id
    timeline = await _timeline(alice, room_id)
    assert timeline[0]["event_id"] == pdu.event_id and timeline[0]["redacts"] == own


async def test_a_redaction_received_before_a_target_of_another_room_does_not_redact_it(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2)
    room_id, alice, bob = await share_room(a, b, room_version="11")
    other_room = await alice.create_room(preset="public_chat", room_version="11")
    await bootstrap_room(a, b, other_room)
    await remote_join(b, bob.user_id, other_room)
    await settle(a, b)
    # b's message of the other room, built but not sent yet
    later = await build_pdu(
        b.server, other_room, "m.room.message", bob.user_id, {"msgtype": "m.text", "body": "hi"}
    )
    redaction = await build_pdu(
        b.server, room_id, "m.room.redaction", bob.user_id, {"redacts": later.event_id}
    )
    assert (await send_txn(b, a, [redaction.pdu]))["pdus"][redaction.event_id] == {}
    assert (await send_txn(b, a, [later.pdu]))["pdus"][later.event_id] == {}
    stored = await a.server.stores.events.get_event(later.event_id)
    assert stored is not None and stored.redacted_by is None
    assert (await _event(alice, other_room, later.event_id))["content"]["body"] == "hi"


async def test_self_destructing_messages_from_other_servers_expire(
    federation_servers: ServerFactory,
) -> None:
    a, b = await federation_servers(2, enable_ephemeral_messages=True)
    room_id, alice, bob = await share_room(a, b)
    key = "org.matrix.self_destruct_after"
    event_id = await bob.send(room_id, "bye soon", **{key: a.clock.time_ms() + 1000})
    await settle(a, b)
    assert (await _event(alice, room_id, event_id))["content"]["body"] == "bye soon"
    assert a.server.message_expiry is not None
    a.clock.advance(2)
    await a.server.message_expiry.tick()
    served = await _event(alice, room_id, event_id)
    assert served["content"] == {} and served["sender"] == bob.user_id
    stored = await a.server.stores.events.get_event(event_id)
    assert stored is not None and "body" not in stored.event.content

"""Shared rooms between federating test servers, before remote joins exist.

``share_room(a, b)``: alice creates a room on ``a``; ``b`` gets the room row and
receives the room's events from ``a`` over ``PUT /send``; then bob (on ``b``) joins
with an event built by ``b``'s own EventCreator, which ``b``'s sender delivers to
``a``. ``build_pdu`` makes a signed PDU on top of a server's view of a room without
persisting it (for forged or hand-made events).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from homeserver.events import KNOWN_ROOM_VERSIONS, Event, EventBuilder, SigningKey
from homeserver.server import Homeserver
from tests.federation.servers import FederatingServer
from tests.rooms.helpers import User, make_user

_txn = itertools.count()
SEND = "/_matrix/federation/v1/send"


def fed_events(server: FederatingServer) -> Any:
    services = server.server.federation_events
    assert services is not None
    return services


async def send_txn(
    origin: FederatingServer,
    destination: FederatingServer,
    pdus: list[Any],
    edus: list[Any] | None = None,
    txn_id: str | None = None,
) -> Any:
    """``origin`` sends a transaction to ``destination``; the answer."""
    body: dict[str, Any] = {
        "origin": origin.server_name,
        "origin_server_ts": origin.clock.time_ms(),
        "pdus": [dict(p) if isinstance(p, Mapping) else p for p in pdus],
    }
    if edus is not None:
        body["edus"] = [dict(e) if isinstance(e, Mapping) else e for e in edus]
    txn = txn_id or f"test{next(_txn)}"
    return await origin.fed.client.put_json(destination.server_name, f"{SEND}/{txn}", body)


async def room_pdus(server: Homeserver, room_id: str) -> list[dict[str, Any]]:
    upto = await server.stores.events.max_stream_ordering()
    events = await server.stores.events.room_events_between([room_id], 0, upto, 1000)
    return [dict(e.event.pdu) for e in events]


async def bootstrap_room(a: FederatingServer, b: FederatingServer, room_id: str) -> None:
    """Give ``b`` the room and ``a``'s events of it so far (through /send)."""
    version = await a.server.stores.events.room_version_id(room_id)
    assert version is not None
    await fed_events(b).pipeline.ensure_room(room_id, KNOWN_ROOM_VERSIONS[version], "")
    pdus = await room_pdus(a.server, room_id)
    for start in range(0, len(pdus), 50):
        answer = await send_txn(a, b, pdus[start : start + 50])
        assert all(r == {} for r in answer["pdus"].values()), answer


async def remote_join(b: FederatingServer, user_id: str, room_id: str) -> str:
    """``user_id`` (of ``b``) joins a room ``b`` already holds; the join event ID."""
    creator = b.server.client.creator
    stored = await creator.send(
        room_id, "m.room.member", user_id, {"membership": "join"}, state_key=user_id
    )
    return stored.event_id


async def share_room(
    a: FederatingServer, b: FederatingServer, **create: Any
) -> tuple[str, User, User]:
    """A room created by alice on ``a`` that bob on ``b`` has joined."""
    alice = await make_user(a.harness, "alice")
    bob = await make_user(b.harness, "bob")
    create.setdefault("preset", "public_chat")
    room_id = await alice.create_room(**create)
    await bootstrap_room(a, b, room_id)
    await remote_join(b, bob.user_id, room_id)
    await settle(a, b)
    members = await a.server.stores.state.current_members(room_id)
    assert members.get(bob.user_id) == "join", members
    return room_id, alice, bob


async def settle(*servers: FederatingServer) -> None:
    """Wait until every server's outbound queues are drained (device list changes
    reach the sender, and update EDUs their resyncs, through tasks of their own:
    wait for those too)."""
    for _ in range(3):
        for server in servers:
            await server.server.client.e2ee.device_lists.wait_listeners()
            if server.server.federation_e2ee is not None:
                await server.server.federation_e2ee.remote.wait_resyncs()
            await fed_events(server).sender.wait_idle()


async def build_pdu(
    server: Homeserver,
    room_id: str,
    event_type: str,
    sender: str,
    content: Mapping[str, Any],
    *,
    state_key: str | None = None,
    sign_as: tuple[str, SigningKey] | None = None,
    prev_event_ids: list[str] | None = None,
) -> Event:
    """A signed event on top of ``server``'s current state of the room (not stored)."""
    stores = server.stores
    version = await stores.events.room_version_id(room_id)
    assert version is not None
    rv = KNOWN_ROOM_VERSIONS[version]
    state = await stores.state.get_current_state(room_id)
    builder = EventBuilder(rv, event_type, sender, content, room_id=room_id, state_key=state_key)
    prevs = prev_event_ids or await stores.events.get_forward_extremities(room_id)
    prev_events = await stores.events.get_events(prevs)
    depth = max(s.depth for s in prev_events.values()) + 1
    auth_ids = [state[k] for k in sorted(builder.auth_types()) if k in state]
    name, key = sign_as or (server.config.server_name, server.signing_key)
    return builder.build(
        prev_event_ids=prevs,
        auth_event_ids=auth_ids,
        depth=depth,
        server_name=name,
        signing_key=key,
        origin_server_ts=server.clock.time_ms(),
    )

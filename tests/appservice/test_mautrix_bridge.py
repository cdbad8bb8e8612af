"""A real bridge library against this server: the PyPI ``mautrix`` package's
``AppService`` and ``IntentAPI`` (what the mautrix bridges are built on) ping the
server, register ghosts, create and bridge a room, receive messages, typing and
receipts, and answer user and alias queries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import unused_port
from mautrix.appservice import AppService
from mautrix.appservice.state_store.memory import ASStateStore
from mautrix.client.state_store.memory import MemoryStateStore
from mautrix.types import (
    Event,
    EventType,
    MessageEvent,
    ReceiptEvent,
    RoomAlias,
    RoomCreatePreset,
    RoomID,
    TypingEvent,
    UserID,
)

from tests.appservice.conftest import AS_TOKEN, HS_TOKEN, registration, write_registration
from tests.conftest import HarnessFactory, HomeserverHarness

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

SERVER = "test.local"


class MemoryASStateStore(ASStateStore, MemoryStateStore):
    """mautrix's in-memory stores combined, as its bridges combine their SQL ones."""

    def __init__(self) -> None:
        ASStateStore.__init__(self)
        MemoryStateStore.__init__(self)


class Bridge:
    """The bridge side: a mautrix AppService and what it has been told."""

    def __init__(self, hs_url: str, port: int) -> None:
        self.port = port
        self.events: list[Event] = []
        self.changed = asyncio.Event()
        self.user_queries: list[str] = []
        self.alias_queries: list[str] = []
        self.alias_rooms: dict[str, RoomID] = {}
        self.az = AppService(
            server=hs_url,
            domain=SERVER,
            as_token=AS_TOKEN,
            hs_token=HS_TOKEN,
            bot_localpart="bridgebot",
            id="bridge",
            state_store=MemoryASStateStore(),
            query_user=self.query_user,
            query_alias=self.query_alias,
            ephemeral_events=True,
        )
        self.az.matrix_event_handler(self.on_event)

    async def on_event(self, event: Event) -> None:
        self.events.append(event)
        self.changed.set()

    async def query_user(self, user_id: UserID) -> dict[str, Any] | None:
        """A bridge makes the ghost of a remote user it knows, then says yes."""
        self.user_queries.append(user_id)
        if not user_id.startswith("@_bridge_"):
            return None
        await self.az.intent.user(user_id).ensure_registered()
        return {"registered": True}  # mautrix answers 404 to an empty answer

    async def query_alias(self, alias: RoomAlias) -> dict[str, Any] | None:
        """A bridge makes the portal room of a remote channel, then says yes."""
        self.alias_queries.append(alias)
        localpart = alias[1:].split(":", 1)[0]
        room_id = await self.az.intent.create_room(
            alias_localpart=localpart, preset=RoomCreatePreset.PUBLIC
        )
        self.alias_rooms[alias] = room_id
        return {"room_id": room_id}

    async def wait_for(self, predicate: Any) -> Event:
        async with asyncio.timeout(10):
            while True:
                for event in self.events:
                    if predicate(event):
                        return event
                self.changed.clear()
                await self.changed.wait()


@pytest.fixture
async def bridged(
    make_homeserver: HarnessFactory, tmp_path: Path
) -> AsyncIterator[tuple[HomeserverHarness, Bridge]]:
    port = unused_port()
    path = write_registration(
        tmp_path, registration(f"http://127.0.0.1:{port}", receive_ephemeral=True)
    )
    hs = await make_homeserver(app_service_config_files=[path])
    bridge = Bridge(str(hs.client.make_url("")).rstrip("/"), port)
    await bridge.az.start(host="127.0.0.1", port=port)
    try:
        yield hs, bridge
    finally:
        await bridge.az.stop()


async def _client(hs: HomeserverHarness, localpart: str) -> dict[str, str]:
    session = await hs.register(localpart)
    return {"Authorization": f"Bearer {session['access_token']}"}


async def test_mautrix_bridge_end_to_end(bridged: tuple[HomeserverHarness, Bridge]) -> None:
    hs, bridge = bridged
    bot = bridge.az.intent

    # The bridge checks the homeserver can reach it.
    # (mautrix raises on any error answer; it reports a 0 ms round trip as -1)
    assert await bot.appservice_ping("bridge", txn_id="startup") >= -1

    # Ghosts and the bot are registered without passwords.
    await bot.ensure_registered()
    ghost = bot.user(UserID(f"@_bridge_alice:{SERVER}"))
    await ghost.ensure_registered()
    await ghost.set_displayname("Alice (remote)")
    assert (await ghost.whoami()).user_id == f"@_bridge_alice:{SERVER}"

    # A Matrix user and a portal room bridged to a remote channel.
    bob = await _client(hs, "bob")
    room_id = await bot.create_room(alias_localpart="_bridge_general", invitees=[f"@bob:{SERVER}"])
    await ghost.ensure_joined(room_id)
    join = await hs.client.post(f"/_matrix/client/v3/join/{room_id}", headers=bob, json={})
    assert join.status == 200, await join.text()

    # The remote user speaks: timestamp massaging keeps the remote time.
    await ghost.send_text(room_id, "hello from the other side", timestamp=1_600_000_000_000)

    # Bob speaks: the bridge is told, in order.
    resp = await hs.client.put(
        f"/_matrix/client/v3/rooms/{room_id}/send/m.room.message/t1",
        headers=bob,
        json={"msgtype": "m.text", "body": "hi alice"},
    )
    assert resp.status == 200
    message = await bridge.wait_for(
        lambda e: (
            isinstance(e, MessageEvent)
            and e.sender == f"@bob:{SERVER}"
            and e.content.body == "hi alice"
        )
    )
    assert message.room_id == room_id
    ghost_message = await bridge.wait_for(
        lambda e: isinstance(e, MessageEvent) and e.sender == f"@_bridge_alice:{SERVER}"
    )
    assert ghost_message.timestamp == 1_600_000_000_000

    # Typing and read receipts reach the bridge as ephemeral events.
    await hs.client.put(
        f"/_matrix/client/v3/rooms/{room_id}/typing/@bob:{SERVER}",
        headers=bob,
        json={"typing": True, "timeout": 30000},
    )
    typing = await bridge.wait_for(
        lambda e: isinstance(e, TypingEvent) and f"@bob:{SERVER}" in e.content.user_ids
    )
    assert typing.room_id == room_id
    receipt_resp = await hs.client.post(
        f"/_matrix/client/v3/rooms/{room_id}/receipt/m.read/{message.event_id}",
        headers=bob,
        json={},
    )
    assert receipt_resp.status == 200
    receipt = await bridge.wait_for(lambda e: isinstance(e, ReceiptEvent))
    assert message.event_id in receipt.content
    assert receipt.type == EventType.RECEIPT and receipt.room_id == room_id

    # Bob invites a remote user the bridge has not made yet: the server asks it.
    carol = f"@_bridge_carol:{SERVER}"
    invite = await hs.client.post(
        f"/_matrix/client/v3/rooms/{room_id}/invite", headers=bob, json={"user_id": carol}
    )
    assert invite.status == 200, await invite.text()
    assert carol in bridge.user_queries
    await bridge.wait_for(
        lambda e: (
            e.type == EventType.ROOM_MEMBER
            and e.state_key == carol
            and e.content.membership.value == "invite"
        )
    )

    # Bob joins a remote channel by alias: the server asks the bridge, which makes it.
    alias = f"#_bridge_remote_channel:{SERVER}"
    joined = await hs.client.post(f"/_matrix/client/v3/join/{quote(alias)}", headers=bob, json={})
    assert joined.status == 200, await joined.text()
    assert alias in bridge.alias_queries
    assert (await joined.json())["room_id"] == bridge.alias_rooms[alias]

    # An unknown alias outside what the bridge makes stays unknown.
    missing = await hs.client.get(
        f"/_matrix/client/v3/directory/room/%23nothing:{SERVER}", headers=bob
    )
    assert missing.status == 404

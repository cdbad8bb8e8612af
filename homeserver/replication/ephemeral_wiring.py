"""The non-event streams of one process of a deployment with workers, put together
for the composition root: which writes go to which writer, what applies the
writers' notices here, and the replication endpoints this process serves.

Usage (``server.py``, with ``replication`` the process's runtime)::

    streams = EphemeralReplication.of(replication)
    e2ee = await E2ee.build(..., replication=streams)
    push = PushService.build(..., replication=streams)
    ephemeral = await EphemeralServices.build(..., replication=streams)
    ...
    wiring = EphemeralWiring.build(streams, replication.client, secret, ephemeral,
                                   e2ee.device_lists, push.rules, transactions, clock)
    wiring.subscribe(receiver)   # before the lead's own on_resync (wake_all)
    routes += wiring.endpoints.routes()   # the ``replication`` listener resource
    ...
    await wiring.stop()          # at shutdown
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from federation.transactions import TransactionHandler
from homeserver.clock import Clock
from homeserver.e2ee.device_lists import DeviceListService
from homeserver.ephemeral import EphemeralServices
from homeserver.push.rules_service import PushRulesService
from homeserver.replication.ephemeral import EphemeralMirror, EphemeralReplication
from homeserver.replication.ephemeral_endpoints import (
    AccountDataForwarder,
    EphemeralEndpoints,
    FederationEduForwarder,
    PresenceActivityForwarder,
    ReplicationCaller,
)
from homeserver.replication.notices import (
    ACCOUNT_DATA,
    PRESENCE,
    RoomEventNotice,
    RoomsStreamNotice,
    UserStreamNotice,
)


class NoticeSubscription(Protocol):
    """What the wiring needs of ``receiver.NoticeReceiver``."""

    def on_room_event(self, handler: Callable[[RoomEventNotice], None]) -> None: ...

    def on_user_stream(self, handler: Callable[[UserStreamNotice], None]) -> None: ...

    def on_rooms_stream(self, handler: Callable[[RoomsStreamNotice], None]) -> None: ...

    def on_resync(self, handler: Callable[[dict[str, int]], Awaitable[None] | None]) -> None: ...


@dataclass
class EphemeralWiring:
    mirror: EphemeralMirror
    endpoints: EphemeralEndpoints
    presence_forwarder: PresenceActivityForwarder | None = None

    @classmethod
    def build(
        cls,
        streams: EphemeralReplication,
        client: ReplicationCaller,
        secret: str | None,
        ephemeral: EphemeralServices,
        device_lists: DeviceListService,
        push_rules: PushRulesService,
        transactions: TransactionHandler | None,
        clock: Clock,
    ) -> EphemeralWiring:
        """Install the forwarders where this process does not write a stream (inbound
        EDUs, presence activity, account data written inside the server)."""
        instance = streams.instance_name
        if transactions is not None:
            transactions.edu_forwarder = FederationEduForwarder(client, instance, streams.writer)
        presence_writer = streams.writer(PRESENCE)
        forwarder = None
        if presence_writer != instance:
            forwarder = PresenceActivityForwarder(client, instance, presence_writer, clock)
            ephemeral.presence.activity_forwarder = forwarder
        account_writer = streams.writer(ACCOUNT_DATA)
        if account_writer != instance:
            ephemeral.account_data.forwarder = AccountDataForwarder(client, account_writer)
        endpoints = EphemeralEndpoints(
            secret,
            transactions,
            ephemeral.presence if presence_writer == instance else None,
            ephemeral.account_data if account_writer == instance else None,
        )
        return cls(ephemeral.mirror(device_lists, push_rules), endpoints, forwarder)

    def subscribe(self, receiver: NoticeSubscription) -> None:
        """Apply the writers' notices here; after a (re)connect, rebuild what memory
        holds (register before anything that wakes every long-poll on resync)."""
        receiver.on_user_stream(self.mirror.on_user_stream)
        receiver.on_rooms_stream(self.mirror.on_rooms_stream)
        receiver.on_room_event(self.mirror.on_room_event)
        receiver.on_resync(lambda _positions: self.mirror.resync())

    async def stop(self) -> None:
        if self.presence_forwarder is not None:
            await self.presence_forwarder.stop()
        await self.mirror.stop()

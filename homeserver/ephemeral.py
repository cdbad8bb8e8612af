"""The non-room streams built together: presence, receipts, typing, account data,
to-device; their /sync extensions and the background ticker of their timeouts."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from homeserver.account_data import AccountDataService, AccountDataSyncExtension
from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.notifier import Notifier
from homeserver.presence import PresenceService, PresenceSyncExtension
from homeserver.receipts import ReceiptService, ReceiptsSyncExtension
from homeserver.replication.invalidation import CachePublisher
from homeserver.rooms.healing import DUMMY_EVENT
from homeserver.rooms.persister import EventPersister
from homeserver.streams import StreamIdGenerator
from homeserver.sync.extensions import SyncExtension
from homeserver.ticker import Ticker
from homeserver.to_device import ToDeviceService, ToDeviceSyncExtension
from homeserver.typing import TypingService, TypingSyncExtension
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)


@dataclass
class EphemeralServices:
    presence: PresenceService
    receipts: ReceiptService
    typing: TypingService
    account_data: AccountDataService
    to_device: ToDeviceService
    _ticker: Ticker = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._ticker = Ticker(self.tick, "ephemeral tick")

    @classmethod
    async def build(
        cls,
        config: HomeserverConfig,
        stores: Stores,
        notifier: Notifier,
        persister: EventPersister,
        clock: Clock,
        *,
        cache_publisher: CachePublisher | None = None,
    ) -> EphemeralServices:
        """Build every service with its stream seeded from the database."""
        account_data = AccountDataService(
            stores.account_data,
            notifier,
            StreamIdGenerator(await stores.account_data.max_stream_id()),
            cache_publisher=cache_publisher,
        )
        receipts = ReceiptService(
            stores,
            notifier,
            StreamIdGenerator(await stores.receipts.max_stream_id()),
            clock,
            account_data,
        )
        presence = PresenceService(
            config.presence,
            config.server_name,
            stores,
            notifier,
            clock,
            StreamIdGenerator(await stores.presence.max_stream_id()),
        )
        await presence.load()
        to_device = ToDeviceService(
            config.server_name,
            stores,
            notifier,
            StreamIdGenerator(await stores.to_device.max_stream_id()),
            clock,
        )
        services = cls(
            presence,
            receipts,
            TypingService(config.server_name, stores, notifier, clock),
            account_data,
            to_device,
        )
        persister.persisted_hooks.append(services.on_event_persisted)
        return services

    def sync_extensions(self) -> list[SyncExtension]:
        return [
            AccountDataSyncExtension(self.account_data),
            ReceiptsSyncExtension(self.receipts),
            TypingSyncExtension(self.typing),
            PresenceSyncExtension(self.presence),
            ToDeviceSyncExtension(self.to_device),
        ]

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        """A member who leaves stops typing; a local user who sends a message
        (``m.room.message``, as Synapse counts it) is active. Other events (joins,
        state, reactions, the dummy events that merge forks) say nothing of the
        user being at their client."""
        if stored.event.type == DUMMY_EVENT:
            return
        await self.typing.on_event_persisted(stored)
        event = stored.event
        if event.type == "m.room.member" and event.state_key is not None:
            self.presence.membership_changed(event.state_key)
        if (
            event.type == "m.room.message"
            and stored.stream_ordering is not None
            and stored.stream_ordering > 0
        ):
            await self.presence.bump_active(event.sender)

    async def tick(self) -> None:
        """Expire typing and apply presence timeouts (tests call this with a FakeClock)."""
        self.typing.tick()
        await self.presence.tick()

    def start(self) -> None:
        self._ticker.start()

    async def stop(self) -> None:
        await self._ticker.stop()
        with contextlib.suppress(Exception):
            await self.presence.flush()

"""The non-room streams built together: presence, receipts, typing, account data,
to-device; their /sync extensions and the background ticker of their timeouts.

With workers (``replication`` given to ``build``) each stream is written by one
process; the others build the same services as readers (see
``homeserver.replication.ephemeral``) and apply the writers' notices through
``mirror()``."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field

from homeserver.account_data import AccountDataService, AccountDataSyncExtension
from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.e2ee.device_lists import DeviceListService
from homeserver.notifier import Notifier
from homeserver.presence import PresenceService, PresenceSyncExtension
from homeserver.push.rules_service import PushRulesService
from homeserver.receipts import ReceiptService, ReceiptsSyncExtension
from homeserver.replication.ephemeral import (
    EphemeralMirror,
    EphemeralReplication,
    role_arguments,
    stream_source,
)
from homeserver.replication.invalidation import CachePublisher
from homeserver.replication.notices import (
    ACCOUNT_DATA,
    PRESENCE,
    RECEIPTS,
    TO_DEVICE,
    TYPING,
)
from homeserver.rooms.healing import DUMMY_EVENT
from homeserver.rooms.persister import EventPersister
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
        replication: EphemeralReplication | None = None,
        cache_publisher: CachePublisher | None = None,
    ) -> EphemeralServices:
        """Build every service with its stream seeded from the database;
        ``replication``: the streams across processes (None: a single process)."""
        rep = replication
        account_data = AccountDataService(
            stores.account_data,
            notifier,
            stream_source(rep, ACCOUNT_DATA, await stores.account_data.max_stream_id()),
            cache_publisher=cache_publisher,
            **role_arguments(rep, ACCOUNT_DATA),
        )
        receipts = ReceiptService(
            stores,
            notifier,
            stream_source(rep, RECEIPTS, await stores.receipts.max_stream_id()),
            clock,
            account_data,
            **role_arguments(rep, RECEIPTS),
        )
        presence = PresenceService(
            config.presence,
            config.server_name,
            stores,
            notifier,
            clock,
            stream_source(rep, PRESENCE, await stores.presence.max_stream_id()),
            **role_arguments(rep, PRESENCE),
        )
        await presence.load()
        to_device = ToDeviceService(
            config.server_name,
            stores,
            notifier,
            stream_source(rep, TO_DEVICE, await stores.to_device.max_stream_id()),
            clock,
            **role_arguments(rep, TO_DEVICE),
        )
        # typing has no table: in one process its positions start at 0; with workers
        # its writer goes on from the position it last told the others (a lower one
        # would be taken by readers for old news)
        typing_seed = 0
        if rep is not None:
            typing_seed = max((await stores.stream_positions.positions(TYPING)).values(), default=0)
        typing = TypingService(
            config.server_name,
            stores,
            notifier,
            clock,
            stream_source(rep, TYPING, typing_seed),
            **role_arguments(rep, TYPING),
        )
        services = cls(presence, receipts, typing, account_data, to_device)
        persister.persisted_hooks.append(services.on_event_persisted)
        return services

    def mirror(
        self,
        device_lists: DeviceListService | None = None,
        push_rules: PushRulesService | None = None,
    ) -> EphemeralMirror:
        """What applies the other processes' notices of these streams here."""
        return EphemeralMirror(
            typing=self.typing,
            receipts=self.receipts,
            presence=self.presence,
            account_data=self.account_data,
            to_device=self.to_device,
            device_lists=device_lists,
            push_rules=push_rules,
        )

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

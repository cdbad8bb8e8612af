"""The legacy API's services, built together by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.clock import Clock
from homeserver.ephemeral import EphemeralServices
from homeserver.legacy.ephemeral import LegacyEphemeral
from homeserver.legacy.event_stream import EventStreamService, SyncPositions
from homeserver.legacy.initial_sync import InitialSyncService
from homeserver.notifier import Notifier
from homeserver.rooms.history import RoomHistory
from homeserver.rooms.serializer import EventSerializer
from homeserver.rooms.visibility import HistoryVisibility
from storage.stores import Stores


@dataclass(frozen=True)
class LegacyApi:
    events: EventStreamService
    initial_sync: InitialSyncService

    @classmethod
    def build(
        cls,
        stores: Stores,
        notifier: Notifier,
        positions: SyncPositions,
        visibility: HistoryVisibility,
        history: RoomHistory,
        serializer: EventSerializer,
        ephemeral: EphemeralServices,
        clock: Clock,
    ) -> LegacyApi:
        flat = LegacyEphemeral(
            ephemeral.typing, ephemeral.receipts, ephemeral.presence, ephemeral.account_data, clock
        )
        return cls(
            EventStreamService(stores, notifier, positions, visibility, serializer, flat),
            InitialSyncService(stores, positions, visibility, history, serializer, flat),
        )

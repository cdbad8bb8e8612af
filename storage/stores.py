"""All stores over one database, composed as attributes (one store per concern), and
the few reads that take two of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from storage.account_data import AccountDataStore
from storage.accounts import AccountStore
from storage.appservice import AppServiceStore
from storage.cache_sizes import CacheSizes
from storage.consent import ConsentStore
from storage.database import Database
from storage.delayed_events import DelayedEventStore
from storage.devices import DeviceStore
from storage.e2e_keys import E2eKeyStore
from storage.event_expiry import EventExpiryStore
from storage.events import EventStore
from storage.external_ids import ExternalIdStore
from storage.federation_queue import FederationQueueStore
from storage.key_backup import KeyBackupStore
from storage.login_tokens import LoginTokenStore
from storage.media import MediaStore
from storage.openid_tokens import OpenIdTokenStore
from storage.presence import PresenceStore
from storage.purge import PurgeStore
from storage.push_actions import PushActionStore
from storage.push_rules import PushRuleStore
from storage.pushers import PusherStore
from storage.receipts import ReceiptStore
from storage.registration_tokens import RegistrationTokenStore
from storage.relations import RelationStore
from storage.remote_devices import RemoteDeviceStore
from storage.reports import ReportStore
from storage.retention import RetentionStore
from storage.room_admin import RoomAdminStore
from storage.room_summaries import RoomSummaryStore
from storage.rooms import RoomStore
from storage.search import SearchStore
from storage.server_keys import ServerKeyStore
from storage.server_notices import ServerNoticeStore
from storage.state import StateStore
from storage.stream_positions import StreamPositionStore
from storage.sync import SyncStore
from storage.threepid_validation import ThreepidValidationStore
from storage.threepids import ThreepidStore
from storage.to_device import ToDeviceStore
from storage.tokens import TokenStore
from storage.uia import UiaStore
from storage.user_admin import UserAdminStore
from storage.user_directory import UserDirectoryStore


@dataclass(frozen=True)
class Stores:
    db: Database
    accounts: AccountStore
    devices: DeviceStore
    tokens: TokenStore
    registration_tokens: RegistrationTokenStore
    uia: UiaStore
    media: MediaStore
    events: EventStore
    state: StateStore
    sync: SyncStore
    rooms: RoomStore
    e2e_keys: E2eKeyStore
    key_backup: KeyBackupStore
    relations: RelationStore
    push_rules: PushRuleStore
    pushers: PusherStore
    push_actions: PushActionStore
    server_keys: ServerKeyStore
    federation_queue: FederationQueueStore
    presence: PresenceStore
    receipts: ReceiptStore
    account_data: AccountDataStore
    to_device: ToDeviceStore
    remote_devices: RemoteDeviceStore
    external_ids: ExternalIdStore
    login_tokens: LoginTokenStore
    openid_tokens: OpenIdTokenStore
    event_expiry: EventExpiryStore
    appservice: AppServiceStore
    room_summaries: RoomSummaryStore
    user_directory: UserDirectoryStore
    search: SearchStore
    delayed_events: DelayedEventStore
    reports: ReportStore
    server_notices: ServerNoticeStore
    room_admin: RoomAdminStore
    purge: PurgeStore
    user_admin: UserAdminStore
    threepids: ThreepidStore
    threepid_validation: ThreepidValidationStore
    consent: ConsentStore
    retention: RetentionStore
    stream_positions: StreamPositionStore

    async def memberships_of(self, event_ids: Sequence[str]) -> dict[str, str]:
        """The membership of each member event we hold among ``event_ids``: from the
        membership column of recorded ones (a join to a big room asks for thousands,
        nearly none of them worth parsing), else from the stored event itself."""
        found = await self.rooms.memberships_of_events(event_ids)
        unknown = [e for e in event_ids if e not in found]
        if unknown:
            for event_id, stored in (await self.events.get_events(unknown)).items():
                if stored.event.membership is not None:
                    found[event_id] = stored.event.membership
        return found

    @classmethod
    def over(cls, db: Database, caches: CacheSizes | None = None) -> Stores:
        """Every store over ``db``, their caches sized by ``caches``."""
        caches = caches or CacheSizes()
        return cls(
            db=db,
            accounts=AccountStore(db),
            devices=DeviceStore(db),
            tokens=TokenStore(db),
            registration_tokens=RegistrationTokenStore(db),
            uia=UiaStore(db),
            media=MediaStore(db),
            events=EventStore(db, caches.size("*getEvent*")),
            state=StateStore(db, caches.size("state_groups")),
            sync=SyncStore(
                db, caches.size("*stateGroupCache*"), heroes_cache_size=caches.size("room_heroes")
            ),
            rooms=RoomStore(db),
            e2e_keys=E2eKeyStore(db),
            key_backup=KeyBackupStore(db),
            relations=RelationStore(db),
            push_rules=PushRuleStore(db),
            pushers=PusherStore(db),
            push_actions=PushActionStore(db),
            server_keys=ServerKeyStore(db),
            federation_queue=FederationQueueStore(db),
            presence=PresenceStore(db),
            receipts=ReceiptStore(db),
            account_data=AccountDataStore(db),
            to_device=ToDeviceStore(db),
            remote_devices=RemoteDeviceStore(db),
            external_ids=ExternalIdStore(db),
            login_tokens=LoginTokenStore(db),
            openid_tokens=OpenIdTokenStore(db),
            event_expiry=EventExpiryStore(db),
            appservice=AppServiceStore(db),
            room_summaries=RoomSummaryStore(db),
            user_directory=UserDirectoryStore(db),
            search=SearchStore(db),
            delayed_events=DelayedEventStore(db),
            reports=ReportStore(db),
            server_notices=ServerNoticeStore(db),
            room_admin=RoomAdminStore(db),
            purge=PurgeStore(db),
            user_admin=UserAdminStore(db),
            threepids=ThreepidStore(db),
            threepid_validation=ThreepidValidationStore(db),
            consent=ConsentStore(db),
            retention=RetentionStore(db),
            stream_positions=StreamPositionStore(db),
        )

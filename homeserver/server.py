"""The composition root: builds storage, services and routes once, starts listeners."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import ssl
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from aiohttp import web
from aiohttp.web_urldispatcher import AbstractRoute
from signedjson.types import SigningKey

from client_api.admin.routes import admin_routes
from client_api.consent import consent_routes
from client_api.context import ClientContext
from client_api.delayed_events import delayed_event_routes
from client_api.media import media_routes
from client_api.routes import Route, client_routes
from federation.context import FederationContext
from federation.e2ee import FederationE2ee
from federation.edu_wiring import (
    wire_presence,
    wire_receipts,
    wire_to_device,
    wire_typing,
    wire_typing_out,
)
from federation.event_services import FederationEventServices, event_routes
from federation.hierarchy import FederationHierarchy
from federation.membership import FederationMembership, membership_routes
from federation.openid import OpenIdUserInfo
from federation.remote_media import FederationMediaFetcher
from federation.routes import federation_routes, key_routes
from federation.third_party_invites import FederationThirdPartyInvites
from federation.xmatrix import sign_request
from homeserver.accounts import AccountService, LoginLimits
from homeserver.admin import AdminServices
from homeserver.admin.background_updates import BackgroundUpdates
from homeserver.admin.destinations import DestinationAdmin
from homeserver.admin.media import MediaAdmin
from homeserver.admin.purge import HistoryPurges, RoomPurger
from homeserver.admin.room_deletion import RoomDeletion
from homeserver.admin.rooms import RoomAdmin
from homeserver.admin.users import UserAdmin
from homeserver.appservice import AppServiceClient, AppServices, load_registrations
from homeserver.appservice.delivery import AppServiceDelivery
from homeserver.appservice.ephemeral import EphemeralCollector, EphemeralFeeds, PresenceFeed
from homeserver.appservice.interest import ServiceInterest
from homeserver.appservice.ping import AppServicePinger
from homeserver.appservice.thirdparty import ThirdPartyLookups
from homeserver.appservice.users import AppServiceUsers
from homeserver.auth import Authenticator
from homeserver.calls.turn import TurnService, TurnSettings
from homeserver.clock import Clock
from homeserver.config import HomeserverConfig, ListenerConfig, load_or_create_signing_key
from homeserver.delayed_events import DelayedEventService
from homeserver.delayed_events.sending import RoomEventSender
from homeserver.e2ee import E2ee
from homeserver.e2ee.sync_extension import DeviceListSyncExtension
from homeserver.ephemeral import EphemeralServices
from homeserver.garbage.arenas import limit_malloc_arenas
from homeserver.garbage.manager import ScheduledCollector
from homeserver.http.listener import gzip_json, health
from homeserver.http.middleware import make_middlewares
from homeserver.http.outbound_tls import client_tls
from homeserver.identity.client import IdentityServerClient
from homeserver.legacy import LegacyApi
from homeserver.media.preview import AddressFilter, url_previewer_from_config
from homeserver.media.retention import MediaRetention
from homeserver.media.service import MediaService, media_service_from_config
from homeserver.metrics import METRICS_PATH, HomeserverMetrics, metrics_app, metrics_handler
from homeserver.metrics.http import servlet_name
from homeserver.notifier import Notifier
from homeserver.openid import OpenIdService
from homeserver.passwords import PasswordHasher
from homeserver.profiles import ProfileService
from homeserver.push.notifications import SyncUnreadCounter
from homeserver.push.pruning import PushActionPruner
from homeserver.push.service import PushService
from homeserver.ratelimit import RateLimit, RateLimiter
from homeserver.registration.consent_notices import ConsentServerNotices
from homeserver.registration.stages import registration_stages_from_config
from homeserver.replication.endpoints import ReplicationEndpoints
from homeserver.replication.ephemeral import EphemeralReplication
from homeserver.replication.ephemeral_wiring import EphemeralWiring
from homeserver.replication.forwarding import EventForwarder
from homeserver.replication.invalidation import EVERYTHING, CacheInvalidator, CachePublisher
from homeserver.replication.notices import CacheNotice, NoticePublisher
from homeserver.replication.roles import (
    FederationShard,
    ProcessRoles,
    PushWakePublisher,
    RoleNotices,
)
from homeserver.replication.runtime import Replication
from homeserver.reports import ReportService
from homeserver.request_context import RequestIds
from homeserver.retention.purge_jobs import RetentionPurgeJobs
from homeserver.retention.service import RetentionPolicies
from homeserver.rooms.censorship import RedactionCensor
from homeserver.rooms.creation import RoomCreationService
from homeserver.rooms.creator import EventCreator
from homeserver.rooms.directory import DirectoryRules, DirectoryService
from homeserver.rooms.expiry import MessageExpiry
from homeserver.rooms.guest_access import GuestEvictor
from homeserver.rooms.healing import ForkHealer
from homeserver.rooms.history import RoomHistory
from homeserver.rooms.lanes import RoomLanes
from homeserver.rooms.member_lists import MemberListService
from homeserver.rooms.membership import MembershipService
from homeserver.rooms.persister import EventPersister
from homeserver.rooms.relations import RelationsService
from homeserver.rooms.room_events import RoomEventService
from homeserver.rooms.serializer import EventSerializer
from homeserver.rooms.state_resolution import StateResolver
from homeserver.rooms.third_party_invites import ThirdPartyInviteService
from homeserver.rooms.upgrade import RoomUpgradeService
from homeserver.rooms.upgrade_transfer import UpgradeTransfer
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.search import SearchService
from homeserver.server_notices import ServerNotices
from homeserver.sessions import SessionService
from homeserver.sliding_sync.extensions import SlidingSyncExtensions
from homeserver.sliding_sync.service import SlidingSyncService
from homeserver.sliding_sync.summaries import RoomSummaries
from homeserver.spaces.service import SpaceService
from homeserver.sso import (
    LoginTokenService,
    SsoService,
    cas_provider_from_config,
    oidc_providers_from_config,
    session_signer_for,
)
from homeserver.streams import StreamIdGenerator
from homeserver.sync.service import SyncService
from homeserver.threepids import ThreepidService
from homeserver.uia import UserInteractiveAuth
from homeserver.user_directory import UserDirectory
from storage.connect import open_postgres, open_sqlite
from storage.database import Database
from storage.stores import Stores

logger = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 10.0
SWITCH_INTERVAL_S = 0.0002


async def open_database(config: HomeserverConfig) -> Database:
    db_config = config.database
    if db_config.engine == "postgres":
        assert db_config.pg is not None
        return await open_postgres(
            db_config.postgres_conninfo(),
            min_size=db_config.pg.cp_min,
            max_size=db_config.pg.cp_max,
        )
    assert db_config.sqlite_path is not None
    return await open_sqlite(Path(db_config.sqlite_path))


def _limit(cfg: object) -> RateLimit:
    return RateLimit(getattr(cfg, "per_second"), getattr(cfg, "burst_count"))  # noqa: B009


class PeriodicJob(Protocol):
    """Background work on a timer: started with the listeners, stopped with them."""

    def start(self) -> None: ...

    async def stop(self) -> None: ...


@dataclass
class Homeserver:
    """Every long-lived part of one homeserver process, built once."""

    config: HomeserverConfig
    clock: Clock
    db: Database
    signing_key: SigningKey
    stores: Stores
    client: ClientContext
    media: MediaService
    federation: FederationContext
    admin: AdminServices
    ephemeral: EphemeralServices | None = None
    federation_events: FederationEventServices | None = None
    federation_membership: FederationMembership | None = None
    federation_e2ee: FederationE2ee | None = None
    fork_healer: ForkHealer | None = None
    federation_third_party_invites: FederationThirdPartyInvites | None = None
    federation_hierarchy: FederationHierarchy | None = None
    identity: IdentityServerClient | None = None
    message_expiry: MessageExpiry | None = None  # enable_ephemeral_messages
    redaction_censor: RedactionCensor | None = None  # redaction_retention_period
    media_retention: MediaRetention | None = None  # media_retention
    retention_purge_jobs: RetentionPurgeJobs | None = None  # retention (messages)
    push_action_pruner: PushActionPruner | None = None
    guest_evictor: GuestEvictor | None = None
    appservice_delivery: AppServiceDelivery | None = None
    room_summaries: RoomSummaries | None = None
    metrics: HomeserverMetrics | None = None
    replication: Replication | None = None  # with workers
    ephemeral_wiring: EphemeralWiring | None = None  # with workers
    # applies the other processes' notices to this process's caches
    cache_invalidator: CacheInvalidator | None = None
    # what this process runs (a single process: everything)
    roles: ProcessRoles = field(kw_only=True)
    # applies the other processes' role notices (queued federation, pusher wake-ups)
    role_notices: RoleNotices | None = None
    request_ids: RequestIds = field(default_factory=RequestIds)
    _runners: list[web.AppRunner] = field(default_factory=list)

    @classmethod
    async def build(
        cls,
        config: HomeserverConfig,
        *,
        clock: Clock | None = None,
        db: Database | None = None,
        publisher: NoticePublisher | None = None,
        instance_name: str = "master",
        roles: ProcessRoles | None = None,
    ) -> Homeserver:
        """``publisher``: where this process's notices go (None: a single process,
        nobody to tell); ``instance_name``: the name they carry; ``roles``: the
        background work this process runs (None: as ``config.worker`` says)."""
        clock = clock or Clock()
        signing_key = load_or_create_signing_key(Path(config.signing_key_path))
        registrations = load_registrations(config.app_service_config_files, config.server_name)
        db = db or await open_database(config)
        metrics = HomeserverMetrics(config.server_name, enabled=config.enable_metrics)
        if metrics.enabled:
            db.transaction_observer = metrics.database.observe
        stores = Stores.over(db, config.caches.sizes)
        # with workers: positions shared through PostgreSQL, notices through Redis
        replication = (
            Replication.create(config, stores.stream_positions, clock)
            if config.worker.multi_process
            else None
        )
        if replication is not None:
            publisher, instance_name = replication.bus, replication.instance
        cache_publisher = CachePublisher(publisher, instance_name)
        roles = roles or ProcessRoles.from_config(config.worker)
        appservices = AppServices(registrations, AppServiceClient(tls=client_tls(config)))
        authenticator = Authenticator(
            stores,
            clock,
            config.caches.sizes.size("get_user_by_access_token"),
            appservices=appservices,
            server_name=config.server_name,
        )
        sessions = SessionService(stores, authenticator, clock, cache_publisher=cache_publisher)
        limiter = RateLimiter(clock)
        rc = config.rc_login
        accounts = AccountService(
            config.server_name,
            stores,
            sessions,
            PasswordHasher(config.bcrypt_rounds),
            limiter,
            LoginLimits(_limit(rc.address), _limit(rc.account), _limit(rc.failed_attempts)),
            clock,
            appservices,
        )
        appservice_users = AppServiceUsers(
            config.server_name,
            stores,
            appservices,
            accounts,
            sessions,
            limiter,
            _limit(rc.account),
            clock,
        )
        await appservice_users.check_tokens_unused()
        await appservice_users.ensure_senders()
        notifier = Notifier()
        resolver = StateResolver(stores)
        if replication is not None:
            persister = EventPersister(
                stores, notifier, resolver, clock, replication.events, replication.backfill
            )
            persister.publisher = replication.bus
            persister.instance_name = replication.instance
            # the stream also rises with the other writers' positions: this writer's
            # own committed events wait for that before they are announced
            replication.events.add_advance_listener(lambda _current: persister.announce())
            await replication.prepare_events(
                await stores.events.max_stream_ordering(),
                await stores.events.min_stream_ordering(),
            )
        else:
            persister = EventPersister(
                stores,
                notifier,
                resolver,
                clock,
                StreamIdGenerator(await stores.events.max_stream_ordering()),
                StreamIdGenerator(await stores.events.min_stream_ordering(), step=-1),
            )
            # (one process writes: recent events are kept in step with its commits)
            stores.sync.recent.start(persister.events_stream.current())
        room_summaries = RoomSummaries(stores)
        await room_summaries.fill_missing()  # rooms held from before the summaries
        persister.current_state_hooks.append(room_summaries.on_current_state_txn)
        persister.txn_hooks.append(room_summaries.on_event_txn)
        user_directory = UserDirectory(
            config.server_name, stores, config.user_directory, appservices
        )
        if roles.updates_user_directory:
            await user_directory.fill()  # users and rooms held from before the directory
        persister.current_state_hooks.append(user_directory.on_current_state_txn)
        creator = EventCreator(
            config.server_name, signing_key, stores, persister, RoomLanes(), clock
        )
        if replication is not None:
            forwarder = EventForwarder(
                replication.event_writers,
                replication.client,
                stores,
                replication.wait_for_event_position,
            )
            creator.forwarder = persister.forwarder = forwarder
        membership = MembershipService(
            config.server_name,
            stores,
            creator,
            appservices,
            forget_rooms_on_leave=config.forget_rooms_on_leave,
        )
        persister.persisted_hooks.append(membership.on_event_persisted)
        redaction_censor: RedactionCensor | None = None
        if config.redaction_retention_period is not None:
            redaction_censor = RedactionCensor(
                stores, clock, config.redaction_retention_period, cache_publisher=cache_publisher
            )
        message_expiry: MessageExpiry | None = None
        if config.enable_ephemeral_messages:
            message_expiry = MessageExpiry(stores, clock, cache_publisher=cache_publisher)
            message_expiry.reads_schedule = roles.worker.multi_process
            await message_expiry.load()
            persister.persisted_hooks.append(message_expiry.on_event_persisted)
        guest_evictor = GuestEvictor(
            config.server_name,
            stores,
            lambda user_id, room_id: membership.change(user_id, room_id, user_id, "leave"),
        )
        persister.persisted_hooks.append(guest_evictor.on_event_persisted)
        fork_healer = ForkHealer(config.server_name, stores, creator, clock)
        persister.persisted_hooks.append(fork_healer.on_event_persisted)
        directory_rules = DirectoryRules.from_config(config)
        room_creation = RoomCreationService(
            config.server_name,
            stores,
            creator,
            membership,
            config.default_room_version,
            directory_rules,
        )
        retention_policies = (
            RetentionPolicies(stores, clock, config.retention) if config.retention.enabled else None
        )
        visibility = HistoryVisibility(
            stores,
            config.caches.sizes.size("history_visibility_by_state_group"),
            expired=retention_policies,
        )
        history = RoomHistory(stores, visibility)
        members = MemberListService(stores)
        search = SearchService(stores, visibility, history, members)
        persister.timeline_txn_hooks.append(search.index_txn)
        persister.redaction_hooks.append(search.unindex_txn)
        relations = RelationsService(stores, visibility, history)
        # with workers: each non-event stream has one writer; the others read it
        streams = EphemeralReplication.of(replication) if replication is not None else None
        e2ee = await E2ee.build(
            config.server_name,
            stores,
            notifier,
            sessions,
            clock,
            cache_publisher=cache_publisher,
            replication=streams,
        )
        push = PushService.build(
            config,
            stores,
            notifier,
            persister,
            clock,
            cache_publisher=cache_publisher,
            replication=streams,
        )
        ephemeral = await EphemeralServices.build(
            config,
            stores,
            notifier,
            persister,
            clock,
            cache_publisher=cache_publisher,
            replication=streams,
        )
        ephemeral.receipts.read_receipt_listeners.append(push.evaluator.on_read_receipt)
        push.use_account_data(ephemeral.account_data)
        push.use_sessions(sessions, accounts)
        upgrade_transfer = UpgradeTransfer(
            config.server_name, stores, ephemeral.account_data, push.rules
        )
        membership.remote_join_hooks.append(upgrade_transfer.after_remote_join)
        identity = IdentityServerClient(
            AddressFilter(config.ip_range_blacklist, config.ip_range_whitelist),
            tls=client_tls(config),
        )
        profiles = ProfileService(config.server_name, stores)
        uia = UserInteractiveAuth(stores, clock)
        registration = registration_stages_from_config(
            config,
            uia,
            accounts,
            stores,
            clock,
            # the m.login.email.identity / m.login.msisdn checkers: homeserver/threepids
            email_available=config.email.can_verify_email,
            msisdn_available=config.account_threepid_delegates.msisdn is not None,
        )
        login_tokens = LoginTokenService(stores, clock)
        sso = SsoService(
            config,
            stores,
            accounts,
            uia,
            login_tokens,
            cas_provider_from_config(config),
            oidc_providers_from_config(config, clock),
            session_signer_for(signing_key),
            clock,
        )
        sync = SyncService(
            stores,
            notifier,
            persister.events_stream,
            EventSerializer(stores, clock, relations),
            visibility,
        )
        sliding_sync = SlidingSyncService(
            stores, notifier, sync, EventSerializer(stores, clock, relations), visibility, clock
        )
        directory = DirectoryService(
            config.server_name, stores, creator, directory_rules, appservices
        )
        delayed_events = DelayedEventService(
            stores,
            clock,
            RoomEventSender(creator, membership, directory),
            max_delay_ms=config.max_event_delay_duration,
        )
        if delayed_events.enabled:
            persister.current_state_hooks.append(delayed_events.on_current_state_txn)
        client = ClientContext(
            config=config,
            clock=clock,
            authenticator=authenticator,
            accounts=accounts,
            sessions=sessions,
            uia=uia,
            registration=registration,
            limiter=limiter,
            profiles=profiles,
            notifier=notifier,
            persister=persister,
            creator=creator,
            resolver=resolver,
            serializer=EventSerializer(stores, clock, relations),
            membership=membership,
            room_creation=room_creation,
            members=members,
            room_events=RoomEventService(config.server_name, stores, creator, history),
            directory=directory,
            visibility=visibility,
            history=history,
            relations=relations,
            e2ee=e2ee,
            push=push,
            sync=sync,
            presence=ephemeral.presence,
            receipts=ephemeral.receipts,
            typing=ephemeral.typing,
            account_data=ephemeral.account_data,
            to_device=ephemeral.to_device,
            room_upgrades=RoomUpgradeService(
                config.server_name, stores, creator, room_creation, upgrade_transfer
            ),
            third_party_invites=ThirdPartyInviteService(
                config.server_name, stores, creator, membership, profiles, identity
            ),
            legacy=LegacyApi.build(
                stores,
                notifier,
                sync,
                visibility,
                history,
                EventSerializer(stores, clock, relations),
                ephemeral,
                clock,
            ),
            sso=sso,
            openid=OpenIdService(config.server_name, stores, clock),
            appservices=appservices,
            appservice_ping=AppServicePinger(appservices),
            thirdparty=ThirdPartyLookups(appservices, clock),
            appservice_users=appservice_users,
            sliding_sync=sliding_sync,
            user_directory=user_directory,
            search=search,
            spaces=SpaceService(config.server_name, stores, clock),
            delayed_events=delayed_events,
            turn=TurnService(
                TurnSettings(
                    config.turn_uris,
                    config.turn_shared_secret,
                    config.turn_username,
                    config.turn_password,
                    config.turn_user_lifetime,
                    config.turn_allow_guests,
                ),
                clock,
            ),
            reports=ReportService(
                config.server_name, stores.reports, stores.rooms, stores.accounts, history, clock
            ),
            threepids=ThreepidService(
                config,
                stores,
                clock,
                limiter,
                identity,
                lambda destination, method, uri, content: sign_request(
                    config.server_name, signing_key, destination, method, uri, content
                ),
            ),
        )
        client.profiles.change_hooks.append(membership.refresh_profile)
        client.profiles.change_hooks.append(user_directory.on_profile_change)
        client.sync.unread_counter = SyncUnreadCounter(push.evaluator)
        sliding_sync.use_unread_counter(client.sync.unread_counter)
        sessions.device_removed_hooks.append(sliding_sync.on_devices_removed_txn)
        sliding_sync.extensions = SlidingSyncExtensions.build(
            ephemeral.to_device,
            e2ee.keys,
            e2ee.device_lists,
            ephemeral.account_data,
            ephemeral.receipts,
            ephemeral.typing,
        )
        client.sync.extensions += ephemeral.sync_extensions()
        client.sync.hooks.append(ephemeral.presence.sync_started)
        client.sync.end_hooks.append(ephemeral.presence.sync_ended)
        client.sync.extensions.append(DeviceListSyncExtension(e2ee.device_lists, e2ee.keys))
        federation = FederationContext.build(config, clock, signing_key, stores)
        media = media_service_from_config(
            config, stores.media, clock, remote=FederationMediaFetcher(federation.client)
        )
        federation_events = FederationEventServices.build(
            config.server_name,
            stores,
            federation.client,
            federation.keyring,
            clock,
            persister=persister,
            lanes=creator.lanes,
            resolver=resolver,
            profiles=client.profiles,
            directory=client.directory,
            allow_public_rooms=config.allow_public_rooms_over_federation,
            rc_federation=config.rc_federation,
        )
        client.history.backfiller = federation_events.backfiller
        federation.authenticator.origin_seen.append(federation_events.sender.on_remote_activity)
        wire_typing(federation_events.transactions, stores, ephemeral.typing)
        wire_typing_out(federation_events.sender, ephemeral.typing)
        wire_receipts(
            federation_events.transactions, federation_events.sender, stores, ephemeral.receipts
        )
        wire_presence(
            federation_events.transactions,
            federation_events.sender,
            stores,
            ephemeral.presence,
            clock,
            persister.persisted_hooks,
        )
        federation_membership = FederationMembership.build(
            federation, federation_events, membership, persister, creator.lanes
        )
        federation_e2ee = FederationE2ee.build(
            config.server_name,
            stores,
            clock,
            e2ee,
            client=federation.client,
            sender=federation_events.sender,
            transactions=federation_events.transactions,
            persister=persister,
        )
        federation_hierarchy = FederationHierarchy(
            client.spaces, federation.client, federation_events.acl
        )
        federation_tpi = FederationThirdPartyInvites(
            client.third_party_invites,
            federation.client,
            federation_events.sender,
            federation_events.acl,
        )
        wire_to_device(
            federation_events.transactions,
            federation_events.sender,
            ephemeral.to_device,
            federation_e2ee.to_device_ids,
        )
        appservice_delivery: AppServiceDelivery | None = None
        if roles.notifies_appservices and any(
            service.url is not None for service in appservices.services
        ):
            appservice_delivery = wire_appservice_delivery(
                config.server_name,
                appservices,
                stores,
                persister,
                ephemeral,
                e2ee,
                relations,
                clock,
            )
            client.appservice_ping.answered_hooks.append(appservice_delivery.retry_now)
        accounts.deactivation_hooks.append(membership.leave_all)
        server_notices = ServerNotices(
            config.server_name,
            config.server_notices,
            stores,
            accounts,
            client.profiles,
            room_creation,
            membership,
            creator,
            ephemeral.account_data,
        )
        if registration.consent is not None:
            registration.consent_notices = ConsentServerNotices(
                registration.consent, server_notices, stores
            )
        purger = RoomPurger(
            config.server_name,
            stores,
            creator.lanes,
            push.evaluator,
            cache_publisher=cache_publisher,
        )
        admin = AdminServices(
            media=media,
            destinations=DestinationAdmin(
                stores.federation_queue, federation_events.sender.retry_now
            ),
            media_admin=MediaAdmin(config.server_name, stores.rooms, stores.events, media),
            reports=client.reports,
            server_notices=server_notices,
            background_updates=BackgroundUpdates(),
            rooms=RoomAdmin(
                config.server_name,
                stores,
                creator,
                membership,
                client.directory,
                history,
                creator.lanes,
            ),
            room_deletion=RoomDeletion(
                config.server_name, stores, creator, membership, room_creation, purger, clock
            ),
            history_purges=HistoryPurges(stores, purger, clock),
            users=UserAdmin(
                config.server_name,
                stores,
                accounts,
                sessions,
                profiles,
                media,
                push.pushers,
                clock,
                appservices,
            ),
        )
        retention_purge_jobs = (
            RetentionPurgeJobs(retention_policies, stores, admin.history_purges, purger, clock)
            if retention_policies is not None
            else None
        )
        if metrics.enabled:
            wire_metrics(metrics, stores, authenticator, persister, push, federation_events)
        cache_invalidator = CacheInvalidator(
            state=stores.state,
            events=stores.events,
            sync=stores.sync,
            summaries=stores.room_summaries,
            tokens=authenticator,
            account_data=ephemeral.account_data,
            push_rules=push.rules,
            unread=push.evaluator,
            memberships=sync.memberships,
            presence=ephemeral.presence,
            to_device=ephemeral.to_device,
            receipts=ephemeral.receipts,
            pushers=push.pushers,
            retention=retention_policies,
            key_counts=e2ee.keys,
            changes=notifier,
        )
        role_notices = RoleNotices(
            roles,
            sender=federation_events.sender,
            pushers=push.pushers,
            appservices=appservice_delivery,
        )
        if publisher is not None:
            # with workers: this process's share of federation sending and pushers
            federation_events.sender.shard = FederationShard(roles, publisher, clock)
            push.pushers.owns = roles.pushes_for
            push_wakes = PushWakePublisher(roles, publisher)
            push.evaluator.on_notified.append(push_wakes.on_notified)
            push.evaluator.on_read.append(push_wakes.on_read)
        ephemeral_wiring: EphemeralWiring | None = None
        if replication is not None:
            assert streams is not None
            ephemeral_wiring = EphemeralWiring.build(
                streams,
                replication.client,
                config.worker.replication_secret,
                ephemeral,
                e2ee.device_lists,
                push.rules,
                federation_events.transactions,
                clock,
            )
            await wire_replication(
                replication, notifier, cache_invalidator, ephemeral_wiring, role_notices
            )
        return cls(
            config,
            clock,
            db,
            signing_key,
            stores,
            client,
            media,
            federation,
            admin,
            ephemeral=ephemeral,
            federation_events=federation_events,
            federation_membership=federation_membership,
            federation_e2ee=federation_e2ee,
            fork_healer=fork_healer,
            federation_third_party_invites=federation_tpi,
            federation_hierarchy=federation_hierarchy,
            identity=identity,
            message_expiry=message_expiry,
            redaction_censor=redaction_censor,
            push_action_pruner=PushActionPruner(stores, clock),
            media_retention=(
                MediaRetention(media, clock, config.media_retention)
                if config.media_retention.enabled
                else None
            ),
            guest_evictor=guest_evictor,
            appservice_delivery=appservice_delivery,
            room_summaries=room_summaries,
            metrics=metrics,
            retention_purge_jobs=retention_purge_jobs,
            replication=replication,
            ephemeral_wiring=ephemeral_wiring,
            cache_invalidator=cache_invalidator,
            roles=roles,
            role_notices=role_notices,
        )

    def routes_for(self, resources: set[str]) -> list[Route]:
        routes: list[Route] = []
        if "client" in resources:
            routes += client_routes(self.client, room_versions(), self.config.default_room_version)
            routes += admin_routes(self.client, self.admin)
            routes += delayed_event_routes(self.client)
        if "media" in resources and self.config.enable_media_repo:
            previewer = url_previewer_from_config(self.config, self.media)
            routes += media_routes(self.client, self.media, previewer)
        if "federation" in resources:
            media = self.media if self.config.enable_media_repo else None
            routes += federation_routes(self.federation, media)
            if self.federation_events is not None:
                routes += event_routes(self.federation.authenticator, self.federation_events)
            if self.federation_membership is not None:
                routes += membership_routes(
                    self.federation.authenticator, self.federation_membership
                )
            if self.federation_e2ee is not None:
                routes += self.federation_e2ee.routes(self.federation.authenticator)
            if self.federation_third_party_invites is not None:
                routes += self.federation_third_party_invites.routes(self.federation.authenticator)
            if self.federation_hierarchy is not None:
                routes += self.federation_hierarchy.routes(self.federation.authenticator)
        if "consent" in resources and "client" not in resources:
            routes += consent_routes(self.client)
        if "federation" in resources or "openid" in resources:
            routes += OpenIdUserInfo(self.client.openid).routes()
        if "keys" in resources:
            routes += key_routes(self.federation)
        if "replication" in resources and self.ephemeral_wiring is not None:
            routes += self.ephemeral_wiring.endpoints.routes()
        if "replication" in resources and self.replication is not None:
            routes += ReplicationEndpoints(
                self.config.worker.replication_secret,
                self.replication.event_writers,
                self.client.creator,
                self.client.persister,
            ).routes()
        if "health" in resources:
            routes.append(("GET", "/health", health))
        if "metrics" in resources and self.metrics is not None and self.metrics.enabled:
            routes.append(("GET", METRICS_PATH, metrics_handler(self.metrics)))
        return routes

    def make_app(
        self,
        resources: set[str],
        *,
        compressed: set[str] | frozenset[str] = frozenset(),
        x_forwarded: bool = False,
    ) -> web.Application:
        """The app of one listener: the routes of ``resources``, JSON responses of the
        ``compressed`` ones gzipped, client addresses from X-Forwarded-For if asked."""
        servlets: dict[AbstractRoute, str] = {}
        metrics = self.metrics
        app = web.Application(
            middlewares=make_middlewares(
                self.config.max_request_body_size,
                x_forwarded=x_forwarded,
                request_ids=self.request_ids,
                http_metrics=metrics.http if metrics is not None and metrics.enabled else None,
                servlets=servlets,
            ),
            client_max_size=self.config.max_request_body_size,
        )
        gzipped = resources & compressed
        for names, compress in ((resources - gzipped, False), (gzipped, True)):
            for method, path, handler in self.routes_for(names):
                route = app.router.add_route(
                    method, path, gzip_json(handler) if compress else handler
                )
                servlets[route] = servlet_name(handler)
        app.on_startup.append(self._start_background)
        app.on_cleanup.append(self._stop_background)
        return app

    def periodic_jobs(self) -> list[PeriodicJob]:
        """The configured jobs that run on a timer (each over a Ticker) in this
        process (see homeserver/replication/roles.py)."""
        roles = self.roles
        background = roles.runs_background_tasks
        jobs: tuple[PeriodicJob | None, ...] = (
            self.ephemeral,  # every process: the services know which streams they write
            self.message_expiry if background else None,
            self.redaction_censor if background else None,
            self.media_retention if roles.runs_media_background_jobs else None,
            self.retention_purge_jobs if background else None,
            self.push_action_pruner if background else None,
        )
        return [job for job in jobs if job is not None]

    async def _start_background(self, _app: web.Application) -> None:
        """Start background work (idempotent: every listener's app calls it), the
        jobs of this process's roles only."""
        roles = self.roles
        if roles.runs_pushers:
            await self.client.push.start()
        if self.client.delayed_events.enabled and roles.runs_background_tasks:
            self.client.delayed_events.start()
        for job in self.periodic_jobs():
            job.start()
        if self.federation_events is not None and roles.sends_federation:
            await self.federation_events.sender.start()
        if self.fork_healer is not None and roles.writes_events:
            self.fork_healer.start()
        if self.appservice_delivery is not None:  # built where appservices are notified
            await self.appservice_delivery.start()

    async def _stop_background(self, _app: web.Application) -> None:
        await self.admin.history_purges.stop()
        await self.admin.room_deletion.stop()
        await self.client.push.stop()
        await self.client.delayed_events.stop()
        await self.client.sso.close()
        if self.guest_evictor is not None:
            await self.guest_evictor.stop()
        for job in self.periodic_jobs():
            await job.stop()
        if self.federation_events is not None:
            await self.federation_events.sender.stop()
        if self.fork_healer is not None:
            await self.fork_healer.stop()
        if self.appservice_delivery is not None:
            await self.appservice_delivery.stop()

    async def start_listeners(self) -> None:
        for listener in self.config.listeners:
            await self._start_listener(listener)

    async def _start_listener(self, listener: ListenerConfig) -> None:
        resources: set[str] = {name for res in listener.resources for name in res.names}
        compressed: set[str] = {
            name for res in listener.resources if res.compress for name in res.names
        }
        if listener.type == "metrics":
            if self.metrics is None or not self.metrics.enabled:
                logger.warning("Metrics listener configured, but enable_metrics is not true")
                return
            app = metrics_app(self.metrics)
            resources = {"metrics"}
        else:
            app = self.make_app(resources, compressed=compressed, x_forwarded=listener.x_forwarded)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        self._runners.append(runner)
        tls = self._tls_context() if listener.tls else None
        for address in listener.bind_addresses:
            site = web.TCPSite(runner, address, listener.port, ssl_context=tls)
            await site.start()
            logger.info(
                "listening on %s:%d for %s", address, listener.port, ", ".join(sorted(resources))
            )

    def _tls_context(self) -> ssl.SSLContext:
        """The server TLS context of ``tls: true`` listeners (federation needs HTTPS)."""
        assert self.config.tls_certificate_path and self.config.tls_private_key_path
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.config.tls_certificate_path, self.config.tls_private_key_path)
        return context

    async def stop_listeners(self) -> None:
        """Stop listening and let open requests finish."""
        for runner in self._runners:
            await runner.cleanup()
        self._runners.clear()

    async def close(self) -> None:
        """Stop listening, let open requests finish, then close the database."""
        await self.stop_listeners()
        await self.federation.close()
        await self.client.appservices.client.close()
        if self.ephemeral_wiring is not None:
            await self.ephemeral_wiring.stop()
        if self.replication is not None:
            await self.replication.close()
        if self.identity is not None:
            await self.identity.close()
        await self.db.close()


async def wire_replication(
    replication: Replication,
    notifier: Notifier,
    caches: CacheInvalidator,
    ephemeral: EphemeralWiring,
    roles: RoleNotices,
) -> None:
    """Subscribe to the other processes: their committed room events drop what
    they made stale here and wake this process's long-polls once readable; after
    Redis comes back every cache a missed notice could have made stale is dropped, then
    every long-poll wakes and re-reads its streams (notices may have been missed
    meanwhile). Role notices (queued federation, pusher wake-ups) go to this
    process's sender and pushers."""
    replication.bus.subscribe(roles.on_notice)
    receiver = await replication.connect()
    receiver.on_room_event(roles.on_room_event)
    # (the mirror of the non-event streams first: a woken long-poll sees its state)
    ephemeral.subscribe(receiver)
    receiver.on_room_event(caches.on_room_event)
    receiver.on_room_event(lambda n: notifier.on_room_event(n.room_id, n.position, n.users))
    receiver.on_user_stream(caches.on_user_stream)
    receiver.on_rooms_stream(caches.on_rooms_stream)
    receiver.on_cache(caches.on_cache)
    receiver.on_resync(lambda _positions: caches.on_resync())  # first drop, then wake
    replication.dropped_told = replication.bus.dropped  # (before the first connect)
    replication.bus.on_reconnect(lambda: tell_what_was_dropped(replication))
    receiver.on_resync(lambda _positions: notifier.wake_all())


async def tell_what_was_dropped(replication: Replication) -> None:
    """After a reconnect of this process's bus: if it dropped notices meanwhile (Redis
    was away from it, maybe from it alone), every other process drops its caches."""
    bus = replication.bus
    if bus.dropped > replication.dropped_told:
        replication.dropped_told = bus.dropped
        asyncio.get_running_loop().call_soon(
            bus.publish, CacheNotice(replication.instance, EVERYTHING)
        )


def wire_appservice_delivery(
    server_name: str,
    appservices: AppServices,
    stores: Stores,
    persister: EventPersister,
    ephemeral: EphemeralServices,
    e2ee: E2ee,
    relations: RelationsService,
    clock: Clock,
) -> AppServiceDelivery:
    """Event and ephemeral delivery to the application services, woken by the
    persister and the ephemeral services."""
    interest = ServiceInterest(server_name, stores)
    feeds = EphemeralFeeds(
        typing=ephemeral.typing,
        presence=PresenceFeed(ephemeral.presence, clock),
        receipts=ephemeral.receipts,
        to_device=ephemeral.to_device,
        device_lists=e2ee.device_lists,
    )
    delivery = AppServiceDelivery(
        appservices,
        stores,
        interest,
        EphemeralCollector(stores, interest, feeds, clock),
        EventSerializer(stores, clock, relations),
        persister.events_stream.current,
        clock,
    )
    persister.persisted_hooks.append(delivery.on_event_persisted)
    ephemeral.typing.local_typing_listeners.append(delivery.on_typing)
    ephemeral.receipts.read_receipt_listeners.append(delivery.on_receipt)
    ephemeral.presence.local_change_listeners.append(lambda p: delivery.on_presence(p.user_id))
    ephemeral.to_device.inbox_listeners.append(delivery.on_to_device)
    e2ee.device_lists.change_listeners.append(delivery.on_device_list_change)
    return delivery


def wire_metrics(
    metrics: HomeserverMetrics,
    stores: Stores,
    authenticator: Authenticator,
    persister: EventPersister,
    push: PushService,
    federation_events: FederationEventServices,
) -> None:
    """Hand each instrumented part its metrics (``enable_metrics``)."""
    persister.metrics = metrics.events
    federation_events.sender.metrics = metrics.federation
    federation_events.transactions.metrics = metrics.federation
    metrics.federation.read_backlog = stores.federation_queue.pending_counts
    push.pushers.use_metrics(metrics.push)
    metrics.caches.add(
        authenticator.cache_stats,
        stores.sync.state_group_cache_stats,
        stores.events.cache_stats,
    )


def room_versions() -> dict[str, str]:
    """The room versions this server supports and their stability."""
    from homeserver.events import KNOWN_ROOM_VERSIONS

    return {
        version_id: "stable" if version.stable else "unstable"
        for version_id, version in KNOWN_ROOM_VERSIONS.items()
    }


async def run(config: HomeserverConfig) -> None:
    """Run until SIGINT or SIGTERM, then shut down cleanly."""
    # Database threads hand results back through the GIL; the default 5 ms switch
    # interval would make each of those hand-offs wait behind the busy event loop.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    # (before the database connections start their threads)
    limit_malloc_arenas()
    server = await Homeserver.build(config)
    pid_file = PidFile(config.pid_file) if config.pid_file is not None else None
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    collector = ScheduledCollector(
        tuple(ms / 1000 for ms in config.gc_min_interval),
        config.gc_thresholds,
        observe=server.metrics.gc.observe
        if server.metrics is not None and server.metrics.enabled
        else None,
    )
    try:
        if pid_file is not None:
            pid_file.write()
        # (before listening: the start-up collection pauses no request)
        collector.start()
        await server.start_listeners()
        logger.info("homeserver %s started", config.server_name)
        await stop.wait()
        logger.info("shutting down")
    finally:
        await collector.stop()
        await server.close()
        if pid_file is not None:
            pid_file.remove()


@dataclass
class PidFile:
    """``pid_file``: the process ID, written before listening, removed at a clean exit.
    A file naming another live process is an error (two servers on one config)."""

    path: Path

    def write(self) -> None:
        other = self._live_pid()
        if other is not None and other != os.getpid():
            raise OSError(f"pid_file {self.path} names process {other}, which is running")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(f"{os.getpid()}\n", encoding="ascii")

    def remove(self) -> None:
        if self._live_pid() == os.getpid():
            self.path.unlink(missing_ok=True)

    def _live_pid(self) -> int | None:
        try:
            pid = int(self.path.read_text(encoding="ascii").strip())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

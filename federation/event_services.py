"""The federation event services (inbound pipeline, transactions, sender, reads,
queries), built once by the composition root, and their routes."""

from __future__ import annotations

from dataclasses import dataclass

from federation.auth import FederationAuthenticator, Handler, OriginHandler
from federation.backfill import FederationBackfiller
from federation.client import FederationClient
from federation.event_fetch import RemoteEventFetcher
from federation.event_pipeline import FederationEventPipeline
from federation.keyring import KeyRing
from federation.queries import QueryHandlers, RemoteQueries
from federation.ratelimit import FederationRateLimiter
from federation.room_reads import RoomReadHandlers, ServerVisibility
from federation.routes import FEDERATION_V1, Route
from federation.sender import FederationSender
from federation.server_acl import CurrentStateAclReader, ServerAclChecker
from federation.transactions import TransactionHandler
from homeserver.clock import Clock
from homeserver.config import RateLimitConfig
from homeserver.profiles import ProfileService
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.lanes import RoomLanes
from homeserver.rooms.persister import EventPersister
from homeserver.rooms.state_resolution import StateResolver
from storage.stores import Stores


@dataclass
class FederationEventServices:
    acl: ServerAclChecker
    pipeline: FederationEventPipeline
    transactions: TransactionHandler
    sender: FederationSender
    visibility: ServerVisibility
    reads: RoomReadHandlers
    queries: QueryHandlers
    remote: RemoteQueries
    backfiller: FederationBackfiller
    ratelimit: FederationRateLimiter | None = None

    @classmethod
    def build(
        cls,
        server_name: str,
        stores: Stores,
        client: FederationClient,
        keyring: KeyRing,
        clock: Clock,
        *,
        persister: EventPersister,
        lanes: RoomLanes,
        resolver: StateResolver,
        profiles: ProfileService,
        directory: DirectoryService,
        allow_public_rooms: bool,
        rc_federation: RateLimitConfig | None = None,
    ) -> FederationEventServices:
        acl = ServerAclChecker(CurrentStateAclReader(stores))
        fetcher = RemoteEventFetcher(client)
        pipeline = FederationEventPipeline(
            server_name, stores, keyring, fetcher, persister, lanes, resolver, clock
        )
        backfiller = FederationBackfiller(server_name, stores, pipeline, fetcher, acl, clock)
        transactions = TransactionHandler(pipeline, stores.federation_queue, acl, clock)
        sender = FederationSender(server_name, stores, client, clock)
        persister.persisted_hooks.append(sender.on_event_persisted)
        visibility = ServerVisibility(stores)
        reads = RoomReadHandlers(server_name, stores, acl, visibility, clock)
        queries = QueryHandlers(server_name, stores, profiles, directory, allow_public_rooms)
        remote = RemoteQueries(client)
        directory.remote_alias_lookup = remote.lookup_alias
        directory.remote_public_rooms = remote.public_rooms
        profiles.remote_lookup = remote.lookup_profile
        ratelimit = (
            None
            if rc_federation is None
            else FederationRateLimiter(
                server_name, clock, rc_federation.per_second, rc_federation.burst_count
            )
        )
        return cls(
            acl,
            pipeline,
            transactions,
            sender,
            visibility,
            reads,
            queries,
            remote,
            backfiller,
            ratelimit,
        )


def event_routes(auth: FederationAuthenticator, services: FederationEventServices) -> list[Route]:
    """The federation routes of the event services (all X-Matrix authenticated)."""
    limiter = services.ratelimit

    def a(handler: OriginHandler) -> Handler:
        # rc_federation: one bucket per origin for /send and the event reads
        return auth.authenticated(limiter.limited(handler) if limiter else handler)

    reads = services.reads
    queries = services.queries
    v1 = FEDERATION_V1
    return [
        ("PUT", f"{v1}/send/{{txnId}}", a(services.transactions.on_send_transaction)),
        ("GET", f"{v1}/event/{{eventId}}", a(reads.on_get_event)),
        ("GET", f"{v1}/state/{{roomId}}", a(reads.on_get_state)),
        ("GET", f"{v1}/state_ids/{{roomId}}", a(reads.on_get_state_ids)),
        ("GET", f"{v1}/event_auth/{{roomId}}/{{eventId}}", a(reads.on_get_event_auth)),
        ("GET", f"{v1}/backfill/{{roomId}}", a(reads.on_backfill)),
        ("POST", f"{v1}/get_missing_events/{{roomId}}", a(reads.on_get_missing_events)),
        ("GET", f"{v1}/query/directory", a(queries.on_query_directory)),
        ("GET", f"{v1}/query/profile", a(queries.on_query_profile)),
        ("GET", f"{v1}/query/{{queryType}}", a(queries.on_query_other)),
        ("GET", f"{v1}/timestamp_to_event/{{roomId}}", a(reads.on_timestamp_to_event)),
        ("GET", f"{v1}/publicRooms", a(queries.on_get_public_rooms)),
        ("POST", f"{v1}/publicRooms", a(queries.on_post_public_rooms)),
    ]

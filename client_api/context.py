"""What client API handlers are given: settings and services, built by server.py."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from client_api.guest_access import guest_may_call
from homeserver.account_data import AccountDataService
from homeserver.accounts import AccountService
from homeserver.appservice import AppServices
from homeserver.appservice.ping import AppServicePinger
from homeserver.appservice.thirdparty import ThirdPartyLookups
from homeserver.appservice.users import AppServiceUsers
from homeserver.auth import Authenticator, Requester
from homeserver.calls.turn import TurnService
from homeserver.clock import Clock
from homeserver.config import HomeserverConfig
from homeserver.delayed_events import DelayedEventService
from homeserver.e2ee import E2ee
from homeserver.errors import Forbidden, MissingToken
from homeserver.legacy import LegacyApi
from homeserver.notifier import Notifier
from homeserver.openid import OpenIdService
from homeserver.presence import PresenceService
from homeserver.profiles import ProfileService
from homeserver.push.service import PushService
from homeserver.ratelimit import RateLimiter
from homeserver.receipts import ReceiptService
from homeserver.registration import RegistrationStages
from homeserver.reports import ReportService
from homeserver.request_context import note_requester
from homeserver.rooms.creation import RoomCreationService
from homeserver.rooms.creator import EventCreator
from homeserver.rooms.directory import DirectoryService
from homeserver.rooms.history import RoomHistory
from homeserver.rooms.member_lists import MemberListService
from homeserver.rooms.membership import MembershipService
from homeserver.rooms.persister import EventPersister
from homeserver.rooms.relations import RelationsService
from homeserver.rooms.room_events import RoomEventService
from homeserver.rooms.serializer import EventSerializer
from homeserver.rooms.state_resolution import StateResolver
from homeserver.rooms.third_party_invites import ThirdPartyInviteService
from homeserver.rooms.upgrade import RoomUpgradeService
from homeserver.rooms.visibility import HistoryVisibility
from homeserver.search import SearchService
from homeserver.sessions import SessionService
from homeserver.sliding_sync.service import SlidingSyncService
from homeserver.spaces.service import SpaceService
from homeserver.sso import SsoService
from homeserver.sync.service import SyncService
from homeserver.threepids import ThreepidService
from homeserver.to_device import ToDeviceService
from homeserver.typing import TypingService
from homeserver.uia import UserInteractiveAuth
from homeserver.user_directory import UserDirectory


@dataclass(frozen=True)
class ClientContext:
    config: HomeserverConfig
    clock: Clock
    authenticator: Authenticator
    accounts: AccountService
    sessions: SessionService
    uia: UserInteractiveAuth
    registration: RegistrationStages
    limiter: RateLimiter
    profiles: ProfileService
    notifier: Notifier
    persister: EventPersister
    creator: EventCreator
    resolver: StateResolver
    serializer: EventSerializer
    membership: MembershipService
    room_creation: RoomCreationService
    members: MemberListService
    room_events: RoomEventService
    directory: DirectoryService
    visibility: HistoryVisibility
    history: RoomHistory
    relations: RelationsService
    e2ee: E2ee
    push: PushService
    sync: SyncService
    presence: PresenceService
    receipts: ReceiptService
    typing: TypingService
    account_data: AccountDataService
    to_device: ToDeviceService
    room_upgrades: RoomUpgradeService
    third_party_invites: ThirdPartyInviteService
    legacy: LegacyApi
    sso: SsoService
    openid: OpenIdService
    appservices: AppServices
    appservice_ping: AppServicePinger
    thirdparty: ThirdPartyLookups
    appservice_users: AppServiceUsers
    sliding_sync: SlidingSyncService
    user_directory: UserDirectory
    search: SearchService
    turn: TurnService
    spaces: SpaceService
    delayed_events: DelayedEventService
    reports: ReportService
    threepids: ThreepidService

    @property
    def server_name(self) -> str:
        return self.config.server_name

    async def requester(self, request: web.Request) -> Requester:
        """Authenticate the request's access token (header, or the deprecated query
        parameter); a guest's token only on the endpoints open to guests."""
        token = access_token_of(request)
        if token is None:
            raise MissingToken()
        query = request.query
        requester = await self.authenticator.authenticate(
            token,
            user_id=query.get("user_id"),
            device_id=query.get("device_id") or query.get("org.matrix.msc3202.device_id"),
        )
        note_requester(requester.user_id)
        if requester.is_guest and not guest_may_call(request):
            raise Forbidden("Guest access not allowed", errcode="M_GUEST_ACCESS_FORBIDDEN")
        if requester.device_id and (
            requester.app_service is None or self.config.track_appservice_user_ips
        ):
            await self.sessions.note_seen(
                requester.user_id,
                requester.device_id,
                client_ip(request),
                request.headers.get("User-Agent", ""),
            )
        return requester


def access_token_of(request: web.Request) -> str | None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return request.query.get("access_token") or None


def client_ip(request: web.Request) -> str:
    return request.remote or ""

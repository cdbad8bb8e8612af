"""The one table of client API routes: (method, path, handler).

Paths are written without the ``/_matrix/client/{version}`` prefix where they live
under it; ``CLIENT_PREFIXES`` lists the versions each is served at.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from client_api.account import AccountHandlers
from client_api.account_data import AccountDataHandlers
from client_api.appservice import AppServiceHandlers
from client_api.auth_fallback import auth_fallback_routes
from client_api.consent import consent_routes
from client_api.context import ClientContext
from client_api.devices import DeviceHandlers
from client_api.directory import DirectoryHandlers
from client_api.filters import FilterHandlers
from client_api.keys import KeyHandlers
from client_api.legacy import LegacyHandlers
from client_api.login import LoginHandlers
from client_api.membership import MembershipHandlers
from client_api.messages import MessageHandlers
from client_api.notifications import NotificationHandlers
from client_api.openid import OpenIdHandlers
from client_api.presence import PresenceHandlers
from client_api.profile import ProfileHandlers
from client_api.pushers import PusherHandlers
from client_api.pushrules import PushRuleHandlers
from client_api.receipts import ReceiptHandlers
from client_api.register import RegisterHandlers
from client_api.relations import RelationHandlers
from client_api.reports import ReportHandlers
from client_api.room_keys import RoomKeyHandlers
from client_api.room_upgrades import RoomUpgradeHandlers
from client_api.rooms import RoomHandlers
from client_api.search import SearchHandlers
from client_api.sliding_sync import PATH as SLIDING_SYNC_PATH
from client_api.sliding_sync import SlidingSyncHandlers
from client_api.spaces import SpaceHandlers
from client_api.sso import sso_routes
from client_api.sync import SyncHandlers
from client_api.threepids import threepid_routes
from client_api.to_device import ToDeviceHandlers
from client_api.typing import TypingHandlers
from client_api.user_directory import UserDirectoryHandlers
from client_api.versions import DiscoveryHandlers
from client_api.voip import VoipHandlers

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]

CLIENT_PREFIXES = ("/_matrix/client/v3", "/_matrix/client/r0")
LEGACY_PREFIX = "/_matrix/client/api/v1"


def client_routes(
    ctx: ClientContext, room_versions: dict[str, str], default_room_version: str
) -> list[Route]:
    discovery = DiscoveryHandlers(ctx, room_versions, default_room_version)
    register = RegisterHandlers(ctx)
    login = LoginHandlers(ctx)
    account = AccountHandlers(ctx)
    devices = DeviceHandlers(ctx)
    profile = ProfileHandlers(ctx)
    rooms = RoomHandlers(ctx)
    membership = MembershipHandlers(ctx)
    keys = KeyHandlers(ctx)
    room_keys = RoomKeyHandlers(ctx)
    sync = SyncHandlers(ctx)
    filters = FilterHandlers(ctx)
    directory = DirectoryHandlers(ctx)
    messages = MessageHandlers(ctx)
    relations = RelationHandlers(ctx)
    pushrules = PushRuleHandlers(ctx)
    pushers = PusherHandlers(ctx)
    notifications = NotificationHandlers(ctx)
    presence = PresenceHandlers(ctx)
    receipts = ReceiptHandlers(ctx)
    typing = TypingHandlers(ctx)
    account_data = AccountDataHandlers(ctx)
    to_device = ToDeviceHandlers(ctx)
    room_upgrades = RoomUpgradeHandlers(ctx)
    legacy = LegacyHandlers(ctx)
    openid = OpenIdHandlers(ctx)
    user_directory = UserDirectoryHandlers(ctx)
    search = SearchHandlers(ctx)
    voip = VoipHandlers(ctx)
    spaces = SpaceHandlers(ctx)
    appservice = AppServiceHandlers(ctx)
    reports = ReportHandlers(ctx)

    versioned: list[Route] = [
        ("GET", "/capabilities", discovery.get_capabilities),
        # the whole /pushrules/ tree: each handler parses the path (client_api/pushrules.py)
        ("GET", "/pushrules/{path:.*}", pushrules.get),
        ("PUT", "/pushrules/{path:.*}", pushrules.put),
        ("DELETE", "/pushrules/{path:.*}", pushrules.delete),
        ("GET", "/pushers", pushers.get_pushers),
        ("POST", "/pushers/set", pushers.set_pusher),
        ("GET", "/notifications", notifications.get_notifications),
        ("PUT", "/presence/{userId}/status", presence.set_presence),
        ("GET", "/presence/{userId}/status", presence.get_presence),
        ("POST", "/rooms/{roomId}/receipt/{receiptType}/{eventId}", receipts.post_receipt),
        ("POST", "/rooms/{roomId}/read_markers", receipts.set_read_markers),
        ("PUT", "/rooms/{roomId}/typing/{userId}", typing.set_typing),
        ("PUT", "/user/{userId}/account_data/{type}", account_data.set_account_data),
        ("GET", "/user/{userId}/account_data/{type}", account_data.get_account_data),
        ("PUT", "/user/{userId}/rooms/{roomId}/account_data/{type}", account_data.set_account_data),
        ("GET", "/user/{userId}/rooms/{roomId}/account_data/{type}", account_data.get_account_data),
        ("GET", "/user/{userId}/rooms/{roomId}/tags", account_data.get_tags),
        ("PUT", "/user/{userId}/rooms/{roomId}/tags/{tag}", account_data.set_tag),
        ("DELETE", "/user/{userId}/rooms/{roomId}/tags/{tag}", account_data.delete_tag),
        ("PUT", "/sendToDevice/{eventType}/{txnId}", to_device.send_to_device),
        ("POST", "/register", register.register),
        ("GET", "/register/available", register.get_available),
        ("GET", "/login", login.get_login_flows),
        ("POST", "/login", login.login),
        ("POST", "/refresh", login.refresh),
        ("POST", "/logout", login.logout),
        ("POST", "/logout/all", login.logout_all),
        ("GET", "/account/whoami", account.whoami),
        ("POST", "/account/password", account.change_password),
        ("POST", "/account/deactivate", account.deactivate),
        ("GET", "/devices", devices.get_devices),
        ("GET", "/devices/{deviceId}", devices.get_device),
        ("PUT", "/devices/{deviceId}", devices.update_device),
        ("DELETE", "/devices/{deviceId}", devices.delete_device),
        ("POST", "/delete_devices", devices.delete_devices),
        ("GET", "/profile/{userId}", profile.get_profile),
        ("GET", "/profile/{userId}/{keyName}", profile.get_profile_field),
        ("PUT", "/profile/{userId}/{keyName}", profile.set_profile_field),
        ("DELETE", "/profile/{userId}/{keyName}", profile.delete_profile_field),
        ("POST", "/createRoom", rooms.create_room),
        ("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}", rooms.send_message),
        ("POST", "/rooms/{roomId}/send/{eventType}", rooms.send_message),
        ("GET", "/rooms/{roomId}/state", rooms.get_state),
        ("GET", "/rooms/{roomId}/state/{eventType}", rooms.get_state_event),
        ("GET", "/rooms/{roomId}/state/{eventType}/{stateKey:.*}", rooms.get_state_event),
        ("PUT", "/rooms/{roomId}/state/{eventType}", rooms.set_state),
        ("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey:.*}", rooms.set_state),
        ("POST", "/join/{roomIdOrAlias}", membership.join),
        ("POST", "/rooms/{roomId}/join", membership.join),
        ("POST", "/rooms/{roomId}/invite", membership.invite),
        ("POST", "/rooms/{roomId}/leave", membership.leave),
        ("GET", "/joined_rooms", membership.joined_rooms),
        ("POST", "/keys/upload", keys.upload_keys),
        ("POST", "/keys/query", keys.query_keys),
        ("POST", "/keys/claim", keys.claim_keys),
        ("GET", "/keys/changes", keys.get_keys_changes),
        ("POST", "/keys/device_signing/upload", keys.upload_device_signing_keys),
        ("POST", "/keys/signatures/upload", keys.upload_signatures),
        ("POST", "/room_keys/version", room_keys.create_version),
        ("GET", "/room_keys/version", room_keys.get_version),
        ("GET", "/room_keys/version/{version}", room_keys.get_version),
        ("PUT", "/room_keys/version/{version}", room_keys.update_version),
        ("DELETE", "/room_keys/version/{version}", room_keys.delete_version),
        ("PUT", "/room_keys/keys", room_keys.put_keys),
        ("GET", "/room_keys/keys", room_keys.get_keys),
        ("DELETE", "/room_keys/keys", room_keys.delete_keys),
        ("PUT", "/room_keys/keys/{roomId}", room_keys.put_keys),
        ("GET", "/room_keys/keys/{roomId}", room_keys.get_keys),
        ("DELETE", "/room_keys/keys/{roomId}", room_keys.delete_keys),
        ("PUT", "/room_keys/keys/{roomId}/{sessionId}", room_keys.put_keys),
        ("GET", "/room_keys/keys/{roomId}/{sessionId}", room_keys.get_keys),
        ("DELETE", "/room_keys/keys/{roomId}/{sessionId}", room_keys.delete_keys),
        ("GET", "/sync", sync.sync),
        ("POST", "/user/{userId}/filter", filters.define_filter),
        ("POST", "/user/{userId}/openid/request_token", openid.request_token),
        ("POST", "/user_directory/search", user_directory.search),
        ("POST", "/search", search.search),
        ("GET", "/voip/turnServer", voip.turn_server),
        ("GET", "/user/{userId}/filter/{filterId}", filters.get_filter),
        ("GET", "/rooms/{roomId}/messages", messages.get_messages),
        ("GET", "/rooms/{roomId}/context/{eventId}", messages.get_context),
        ("POST", "/knock/{roomIdOrAlias}", membership.knock),
        ("POST", "/rooms/{roomId}/kick", membership.kick),
        ("POST", "/rooms/{roomId}/ban", membership.ban),
        ("POST", "/rooms/{roomId}/unban", membership.unban),
        ("POST", "/rooms/{roomId}/forget", membership.forget),
        ("GET", "/rooms/{roomId}/members", membership.get_members),
        ("GET", "/rooms/{roomId}/joined_members", membership.joined_members),
        ("GET", "/rooms/{roomId}/event/{eventId}", rooms.get_event),
        ("PUT", "/rooms/{roomId}/redact/{eventId}/{txnId}", rooms.redact),
        ("POST", "/rooms/{roomId}/redact/{eventId}", rooms.redact),
        ("POST", "/rooms/{roomId}/upgrade", room_upgrades.upgrade_room),
        ("POST", "/rooms/{roomId}/report/{eventId}", reports.report_event),
        ("GET", "/directory/room/{roomAlias}", directory.get_room_alias),
        ("PUT", "/directory/room/{roomAlias}", directory.set_room_alias),
        ("DELETE", "/directory/room/{roomAlias}", directory.delete_room_alias),
        ("GET", "/rooms/{roomId}/aliases", directory.get_local_aliases),
        ("GET", "/directory/list/room/{roomId}", directory.get_visibility),
        ("PUT", "/directory/list/room/{roomId}", directory.set_visibility),
        ("GET", "/publicRooms", directory.get_public_rooms),
        ("POST", "/publicRooms", directory.query_public_rooms),
        ("PUT", "/directory/list/appservice/{networkId}/{roomId}", appservice.publish_room),
        ("DELETE", "/directory/list/appservice/{networkId}/{roomId}", appservice.unpublish_room),
        ("GET", "/thirdparty/protocols", appservice.get_protocols),
        ("GET", "/thirdparty/protocol/{protocol}", appservice.get_protocol),
        ("GET", "/thirdparty/location/{protocol}", appservice.query_location),
        ("GET", "/thirdparty/user/{protocol}", appservice.query_user),
        ("GET", "/thirdparty/location", appservice.query_location_by_alias),
        ("GET", "/thirdparty/user", appservice.query_user_by_id),
    ]
    legacy_routes: list[Route] = [
        ("GET", "/events", legacy.get_events),
        ("GET", "/events/{eventId}", legacy.get_event),
        ("GET", "/initialSync", legacy.initial_sync),
        ("GET", "/rooms/{roomId}/initialSync", legacy.room_initial_sync),
    ]
    versioned += legacy_routes
    routes: list[Route] = [
        (method, prefix + path, handler)
        for prefix in CLIENT_PREFIXES
        for method, path, handler in versioned
    ]
    # The legacy endpoints are also served where the clients of their time call them.
    routes += [(m, LEGACY_PREFIX + path, h) for m, path, h in legacy_routes]
    # Cross-signing as first served (MSC1756), under /unstable, where Synapse still
    # serves it and older clients (and SyTest) call it.
    unstable = "/_matrix/client/unstable"
    routes += [
        ("POST", unstable + "/keys/device_signing/upload", keys.upload_device_signing_keys),
        ("POST", unstable + "/keys/signatures/upload", keys.upload_signatures),
    ]
    # Simplified sliding sync (MSC4186) where Synapse serves it.
    routes.append(("POST", SLIDING_SYNC_PATH, SlidingSyncHandlers(ctx).sync))
    routes += sso_routes(ctx, CLIENT_PREFIXES, LEGACY_PREFIX)
    routes += threepid_routes(ctx, CLIENT_PREFIXES)
    routes += auth_fallback_routes(ctx, CLIENT_PREFIXES)
    routes += consent_routes(ctx)
    v1_rooms = "/_matrix/client/v1/rooms/{roomId}"
    routes += [
        ("GET", v1_rooms + "/timestamp_to_event", messages.timestamp_to_event),
        ("GET", v1_rooms + "/relations/{eventId}", relations.get_relations),
        ("GET", v1_rooms + "/relations/{eventId}/{relType}", relations.get_relations),
        ("GET", v1_rooms + "/relations/{eventId}/{relType}/{eventType}", relations.get_relations),
        ("GET", v1_rooms + "/threads", relations.get_threads),
        ("GET", v1_rooms + "/hierarchy", spaces.hierarchy),
        ("GET", "/_matrix/client/v1/room_summary/{roomIdOrAlias}", spaces.room_summary),
        ("GET", "/_matrix/client/v1/mutual_rooms", membership.mutual_rooms),
        ("POST", "/_matrix/client/v1/login/get_token", login.get_login_token),
        ("POST", "/_matrix/client/v1/appservice/{appserviceId}/ping", appservice.ping),
        ("POST", "/_matrix/client/v3/rooms/{roomId}/report", reports.report_room),
        ("POST", "/_matrix/client/v3/users/{userId}/report", reports.report_user),
        ("GET", "/_matrix/client/versions", discovery.get_versions),
        ("GET", "/.well-known/matrix/client", discovery.get_wellknown_client),
        ("GET", "/.well-known/matrix/server", discovery.get_wellknown_server),
        ("GET", "/.well-known/matrix/support", discovery.get_wellknown_support),
        (
            "GET",
            "/_matrix/client/v1/register/m.login.registration_token/validity",
            register.get_token_validity,
        ),
    ]
    return routes

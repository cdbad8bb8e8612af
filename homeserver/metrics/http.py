"""HTTP server metrics under Synapse's names, and the ``servlet`` label of a route.

``servlet`` names the endpoint, never the raw path (a path carries room and event
IDs: one series per room would be unbounded). Where Synapse has a servlet for the
endpoint, its class name is used, so that dashboards written for Synapse (which
filter on ``servlet='RoomSendEventRestServlet'``) read this server unchanged; other
endpoints are named after their handler (``AccountHandlers.whoami``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from homeserver.metrics.families import CounterFamily, GaugeFamily, HistogramFamily

# Unmatched paths (404) and methods (405).
UNRECOGNISED: Final = "UnrecognizedRequestResource"

# Our handler (``Class.method``) -> Synapse's servlet class for the same endpoint.
SYNAPSE_SERVLETS: Final[dict[str, str]] = {
    "RoomHandlers.send_message": "RoomSendEventRestServlet",
    "RoomHandlers.create_room": "RoomCreateRestServlet",
    "RoomHandlers.set_state": "RoomStateEventRestServlet",
    "RoomHandlers.get_state_event": "RoomStateEventRestServlet",
    "RoomHandlers.get_state": "RoomStateRestServlet",
    "RoomHandlers.get_event": "RoomEventServlet",
    "RoomHandlers.redact": "RoomRedactEventRestServlet",
    "SyncHandlers.sync": "SyncRestServlet",
    "SlidingSyncHandlers.sync": "SlidingSyncRestServlet",
    "LoginHandlers.login": "LoginRestServlet",
    "LoginHandlers.get_login_flows": "LoginRestServlet",
    "LoginHandlers.refresh": "RefreshTokenServlet",
    "LoginHandlers.logout": "LogoutRestServlet",
    "LoginHandlers.logout_all": "LogoutAllRestServlet",
    "RegisterHandlers.register": "RegisterRestServlet",
    "RegisterHandlers.get_available": "UsernameAvailabilityRestServlet",
    "RegisterHandlers.get_token_validity": "RegistrationTokenValidityRestServlet",
    "AccountHandlers.whoami": "WhoamiRestServlet",
    "AccountHandlers.change_password": "PasswordRestServlet",
    "AccountHandlers.deactivate": "DeactivateAccountRestServlet",
    "DeviceHandlers.get_devices": "DevicesRestServlet",
    "DeviceHandlers.get_device": "DeviceRestServlet",
    "DeviceHandlers.update_device": "DeviceRestServlet",
    "DeviceHandlers.delete_device": "DeviceRestServlet",
    "DeviceHandlers.delete_devices": "DeleteDevicesRestServlet",
    "MembershipHandlers.join": "JoinRoomAliasServlet",
    "MembershipHandlers.invite": "RoomMembershipRestServlet",
    "MembershipHandlers.leave": "RoomMembershipRestServlet",
    "MembershipHandlers.kick": "RoomMembershipRestServlet",
    "MembershipHandlers.ban": "RoomMembershipRestServlet",
    "MembershipHandlers.unban": "RoomMembershipRestServlet",
    "MembershipHandlers.knock": "KnockRoomAliasServlet",
    "MembershipHandlers.forget": "RoomForgetRestServlet",
    "MembershipHandlers.get_members": "RoomMemberListRestServlet",
    "MembershipHandlers.joined_members": "JoinedRoomMemberListRestServlet",
    "MembershipHandlers.joined_rooms": "JoinedRoomsRestServlet",
    "MessageHandlers.get_messages": "RoomMessageListRestServlet",
    "MessageHandlers.get_context": "RoomEventContextServlet",
    "MessageHandlers.timestamp_to_event": "TimestampLookupRestServlet",
    "KeyHandlers.upload_keys": "KeyUploadServlet",
    "KeyHandlers.query_keys": "KeyQueryServlet",
    "KeyHandlers.claim_keys": "OneTimeKeyServlet",
    "KeyHandlers.get_keys_changes": "KeyChangesServlet",
    "KeyHandlers.upload_device_signing_keys": "SigningKeyUploadServlet",
    "KeyHandlers.upload_signatures": "SignaturesUploadServlet",
    "ReceiptHandlers.post_receipt": "ReceiptRestServlet",
    "ReceiptHandlers.set_read_markers": "ReadMarkerRestServlet",
    "TypingHandlers.set_typing": "RoomTypingRestServlet",
    "PresenceHandlers.set_presence": "PresenceStatusRestServlet",
    "PresenceHandlers.get_presence": "PresenceStatusRestServlet",
    "ProfileHandlers.get_profile": "ProfileRestServlet",
    "ProfileHandlers.get_profile_field": "ProfileFieldRestServlet",
    "ProfileHandlers.set_profile_field": "ProfileFieldRestServlet",
    "ProfileHandlers.delete_profile_field": "ProfileFieldRestServlet",
    "ToDeviceHandlers.send_to_device": "SendToDeviceRestServlet",
    "DiscoveryHandlers.get_versions": "VersionsRestServlet",
    "DiscoveryHandlers.get_capabilities": "CapabilitiesRestServlet",
    "PusherHandlers.get_pushers": "PushersRestServlet",
    "PusherHandlers.set_pusher": "PushersSetRestServlet",
    "NotificationHandlers.get_notifications": "NotificationsServlet",
    "FilterHandlers.define_filter": "CreateFilterRestServlet",
    "FilterHandlers.get_filter": "GetFilterRestServlet",
    "DirectoryHandlers.get_room_alias": "ClientDirectoryServer",
    "DirectoryHandlers.set_room_alias": "ClientDirectoryServer",
    "DirectoryHandlers.delete_room_alias": "ClientDirectoryServer",
    "DirectoryHandlers.get_visibility": "ClientDirectoryListServer",
    "DirectoryHandlers.set_visibility": "ClientDirectoryListServer",
    "DirectoryHandlers.get_public_rooms": "PublicRoomListRestServlet",
    "DirectoryHandlers.query_public_rooms": "PublicRoomListRestServlet",
    "DirectoryHandlers.get_local_aliases": "RoomAliasListServlet",
    "AccountDataHandlers.set_account_data": "AccountDataServlet",
    "AccountDataHandlers.get_account_data": "AccountDataServlet",
    "UserDirectoryHandlers.search": "UserDirectorySearchRestServlet",
    "RelationHandlers.get_relations": "RelationPaginationServlet",
    "RelationHandlers.get_threads": "ThreadsServlet",
    "RoomUpgradeHandlers.upgrade_room": "RoomUpgradeRestServlet",
    "TransactionHandler.on_send_transaction": "FederationSendServlet",
}


def servlet_name(handler: Callable[..., Any]) -> str:
    """The ``servlet`` label of the route whose handler is ``handler``."""
    inner = handler
    while hasattr(inner, "__wrapped__"):  # functools.wraps (federation authentication)
        inner = inner.__wrapped__
    qualname = getattr(inner, "__qualname__", None) or type(inner).__qualname__
    qualname = qualname.replace(".<locals>", "")
    return SYNAPSE_SERVLETS.get(qualname, qualname)


class HttpMetrics:
    """Requests received and answered (labels as Synapse's request_metrics.py)."""

    def __init__(self) -> None:
        self.requests_received = CounterFamily(
            "synapse_http_server_requests_received",
            "Requests received, by method and servlet",
            ("method", "servlet"),
        )
        self.responses = CounterFamily(
            "synapse_http_server_responses",
            "Responses sent, by method and code",
            ("method", "code"),
        )
        self.response_count = CounterFamily(
            "synapse_http_server_response_count",
            "Responses sent, by method, servlet and tag",
            ("method", "servlet", "tag"),
        )
        self.response_time = HistogramFamily(
            "synapse_http_server_response_time_seconds",
            "Time from receiving a request to sending its response",
            ("method", "servlet", "tag", "code"),
        )
        self._in_flight: dict[tuple[str, str], int] = {}
        self.in_flight = GaugeFamily(
            "synapse_http_server_in_flight_requests_count",
            "Requests being handled, by method and servlet",
            ("method", "servlet"),
            lambda: list(self._in_flight.items()),
        )

    def families(self) -> tuple[CounterFamily | HistogramFamily | GaugeFamily, ...]:
        return (
            self.requests_received,
            self.responses,
            self.response_count,
            self.response_time,
            self.in_flight,
        )

    def started(self, key: tuple[str, str]) -> None:
        """A request of ``(method, servlet)`` arrived."""
        self.requests_received.inc(key)
        in_flight = self._in_flight
        in_flight[key] = in_flight.get(key, 0) + 1

    def abandoned(self, key: tuple[str, str]) -> None:
        """A request of ``(method, servlet)`` ended without a response (cancelled)."""
        self._in_flight[key] -= 1

    def finished(self, key: tuple[str, str], tag: str, status: int, elapsed_s: float) -> None:
        method, servlet = key
        self._in_flight[key] -= 1
        self.responses.inc((method, status))
        self.response_count.inc((method, servlet, tag))
        self.response_time.observe((method, servlet, tag, status), elapsed_s)

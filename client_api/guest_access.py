"""Which client API endpoints a guest account may call.

Client-server API, "Guest access" > "Client behaviour": guests get a subset of the
API, listed there; every other endpoint answers a guest's token with 403
``M_GUEST_ACCESS_FORBIDDEN``. ``ClientContext.requester`` applies this table to
every authenticated request, so a new endpoint is closed to guests until it is
listed here.

Besides the spec's list, guests may call what Synapse also opens to them and what
only reads public or their own data: capabilities, joined rooms, the public room
directory, relations, third-party lookups, key changes and cross-signing signature
upload, and the ``/join/{roomIdOrAlias}`` and legacy ``POST /send`` forms of the
listed joins and sends. Of the membership endpoints only join and leave are listed (the spec's
list): a guest does not invite, kick or ban.

Paths are written as in ``client_api/routes.py``, without the
``/_matrix/client/{version}`` prefix (nor the legacy ``/_matrix/client/api/v1``).
"""

from __future__ import annotations

import re

from aiohttp import web

_CLIENT_PREFIX = re.compile(r"^/_matrix/client/(?:v\d+|r0|api/v1|unstable)(?=/)")

GUEST_ENDPOINTS: frozenset[tuple[str, str]] = frozenset(
    {
        # retrieving events and associated media
        ("GET", "/rooms/{roomId}/state"),
        ("GET", "/rooms/{roomId}/state/{eventType}"),
        ("GET", "/rooms/{roomId}/state/{eventType}/{stateKey}"),
        ("GET", "/rooms/{roomId}/context/{eventId}"),
        ("GET", "/rooms/{roomId}/event/{eventId}"),
        ("GET", "/rooms/{roomId}/messages"),
        ("GET", "/rooms/{roomId}/members"),
        ("GET", "/rooms/{roomId}/initialSync"),
        ("GET", "/sync"),
        ("GET", "/events"),
        ("GET", "/media/download/{serverName}/{mediaId}"),
        ("GET", "/media/download/{serverName}/{mediaId}/{fileName}"),
        ("GET", "/media/thumbnail/{serverName}/{mediaId}"),
        # sending events
        ("POST", "/rooms/{roomId}/join"),
        ("POST", "/join/{roomIdOrAlias}"),
        ("POST", "/rooms/{roomId}/leave"),
        ("PUT", "/rooms/{roomId}/send/{eventType}/{txnId}"),
        ("POST", "/rooms/{roomId}/send/{eventType}"),
        ("PUT", "/rooms/{roomId}/state/{eventType}"),
        ("PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}"),
        ("PUT", "/sendToDevice/{eventType}/{txnId}"),
        # account maintenance (profile: the display name only, see GUEST_PROFILE_FIELDS)
        ("PUT", "/profile/{userId}/{keyName}"),
        ("DELETE", "/profile/{userId}/{keyName}"),
        ("GET", "/devices"),
        ("GET", "/devices/{deviceId}"),
        ("PUT", "/devices/{deviceId}"),
        ("GET", "/account/whoami"),
        # end-to-end encryption
        ("POST", "/keys/upload"),
        ("POST", "/keys/query"),
        ("POST", "/keys/claim"),
        ("GET", "/keys/changes"),
        ("POST", "/keys/signatures/upload"),
        # reads Synapse also serves to guests
        ("GET", "/capabilities"),
        ("GET", "/joined_rooms"),
        ("GET", "/publicRooms"),
        ("POST", "/publicRooms"),
        ("GET", "/rooms/{roomId}/relations/{eventId}"),
        ("GET", "/rooms/{roomId}/relations/{eventId}/{relType}"),
        ("GET", "/rooms/{roomId}/relations/{eventId}/{relType}/{eventType}"),
        ("GET", "/thirdparty/protocols"),
        ("GET", "/thirdparty/protocol/{protocol}"),
        ("GET", "/thirdparty/location/{protocol}"),
        ("GET", "/thirdparty/user/{protocol}"),
        ("GET", "/thirdparty/location"),
        ("GET", "/thirdparty/user"),
        # calls (refused to guests unless turn_allow_guests)
        ("GET", "/voip/turnServer"),
    }
)

# "Guest users may only modify their display name; other profile fields may not be changed."
GUEST_PROFILE_FIELDS = frozenset({"displayname"})


def route_path(request: web.Request) -> str | None:
    """The matched route's path pattern without its client API version prefix."""
    resource = request.match_info.route.resource
    if resource is None:
        return None
    return _CLIENT_PREFIX.sub("", resource.canonical, count=1)


def guest_may_call(request: web.Request) -> bool:
    """Whether a guest may make this request (see the module doc)."""
    path = route_path(request)
    if path is None:
        return False
    method = "GET" if request.method == "HEAD" else request.method
    if (method, path) not in GUEST_ENDPOINTS:
        return False
    if path == "/profile/{userId}/{keyName}":
        return request.match_info.get("keyName") in GUEST_PROFILE_FIELDS
    return True

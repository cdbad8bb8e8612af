"""Media admin endpoints in Synapse's shape (admins only).

- ``GET /_synapse/admin/v1/media/{serverName}/{mediaId}``: what is stored of local or
  cached remote media (``media_info``).
- ``POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}`` and
  ``.../media/unquarantine/...``: quarantined media is answered with 404. Remote
  media can be quarantined before it is cached: it is then never fetched.
- ``POST /_synapse/admin/v1/room/{roomId}/media/quarantine`` (and the legacy
  ``/quarantine_media/{roomId}``), ``POST /_synapse/admin/v1/user/{userId}/media/quarantine``:
  quarantine in bulk. Local media protected with
  ``POST /_synapse/admin/v1/media/protect/{mediaId}`` (``.../unprotect/...`` lifts it)
  is spared by every quarantine, by ID too, as in Synapse.
- ``GET /_synapse/admin/v1/room/{roomId}/media``: the local and remote mxc:// URIs of
  a room's events.
- ``DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}``: local media only.
- ``POST /_synapse/admin/v1/media/delete?before_ts=&size_gt=&keep_profiles=`` (and the
  deprecated ``/media/{serverName}/delete``): delete local media by last access and size.
- ``POST /_synapse/admin/v1/purge_media_cache?before_ts=``: drop cached remote media.
"""

from __future__ import annotations

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.admin.media import MediaAdmin
from homeserver.errors import InvalidParam, MatrixError, MissingParam
from homeserver.events import is_valid_user_id
from homeserver.http.body import query_bool, query_int
from homeserver.media.service import MediaService

# Synapse's guard against a timestamp given in seconds: 30000000000 ms is Dec 1970.
EARLIEST_BEFORE_TS = 30_000_000_000


class MediaAdminHandlers:
    def __init__(self, ctx: ClientContext, media: MediaService, media_admin: MediaAdmin) -> None:
        self._ctx = ctx
        self._media = media
        self._media_admin = media_admin

    async def get_media_info(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/media/{serverName}/{mediaId}."""
        await require_admin(self._ctx, request)
        info = await self._media_admin.media_info(
            request.match_info["serverName"], request.match_info["mediaId"]
        )
        return json_response({"media_info": info})

    async def quarantine(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}."""
        requester = await require_admin(self._ctx, request)
        await self._media.set_quarantined(
            request.match_info["serverName"],
            request.match_info["mediaId"],
            True,
            requester.user_id,
        )
        return json_response({})

    async def unquarantine(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}."""
        await require_admin(self._ctx, request)
        await self._media.set_quarantined(
            request.match_info["serverName"], request.match_info["mediaId"], False
        )
        return json_response({})

    async def quarantine_room_media(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/room/{roomId}/media/quarantine."""
        requester = await require_admin(self._ctx, request)
        count = await self._media_admin.quarantine_room(
            request.match_info["roomId"], requester.user_id
        )
        return json_response({"num_quarantined": count})

    async def quarantine_user_media(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/user/{userId}/media/quarantine."""
        requester = await require_admin(self._ctx, request)
        user_id = request.match_info["userId"]
        if not is_valid_user_id(user_id):
            raise InvalidParam(f"Invalid user ID: {user_id}")
        count = await self._media.quarantine_of_user(user_id, requester.user_id)
        return json_response({"num_quarantined": count})

    async def protect(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/protect/{mediaId}."""
        await require_admin(self._ctx, request)
        await self._media.set_protected(request.match_info["mediaId"], True)
        return json_response({})

    async def unprotect(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/unprotect/{mediaId}."""
        await require_admin(self._ctx, request)
        await self._media.set_protected(request.match_info["mediaId"], False)
        return json_response({})

    async def list_room_media(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/room/{roomId}/media."""
        await require_admin(self._ctx, request)
        local, remote = await self._media_admin.media_of_room(request.match_info["roomId"])
        return json_response({"local": local, "remote": remote})

    async def delete_media(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}."""
        await require_admin(self._ctx, request)
        media_id = request.match_info["mediaId"]
        await self._media.delete_local(request.match_info["serverName"], media_id)
        return json_response({"deleted_media": [media_id], "total": 1})

    async def delete_media_by_date_size(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/delete?before_ts=&size_gt=&keep_profiles=, and
        the deprecated POST /_synapse/admin/v1/media/{serverName}/delete."""
        await require_admin(self._ctx, request)
        if "before_ts" not in request.query:
            raise MissingParam("Missing query parameter: before_ts")
        before_ts = query_int(request, "before_ts", 0)
        size_gt = query_int(request, "size_gt", 0)
        keep_profiles = query_bool(request, "keep_profiles", True)
        if before_ts < EARLIEST_BEFORE_TS:
            raise InvalidParam(
                "Query parameter before_ts you provided is from the year 1970. "
                "Double check that you are providing a timestamp in milliseconds."
            )
        server_name = request.match_info.get("serverName")
        if server_name is not None and server_name != self._ctx.server_name:
            raise MatrixError(400, "M_INVALID_PARAM", "Can only delete local media")
        deleted = await self._media.delete_local_older(
            before_ts, size_gt, keep_profiles=keep_profiles
        )
        return json_response({"deleted_media": deleted, "total": len(deleted)})

    async def purge_media_cache(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/purge_media_cache?before_ts=<ms>."""
        await require_admin(self._ctx, request)
        if "before_ts" not in request.query:
            raise MissingParam("Missing query parameter: before_ts")
        before_ts = query_int(request, "before_ts", 0)
        deleted = await self._media.purge_remote_cache(before_ts)
        return json_response({"deleted": deleted})


def media_admin_routes(
    ctx: ClientContext, media: MediaService, media_admin: MediaAdmin
) -> list[Route]:
    handlers = MediaAdminHandlers(ctx, media, media_admin)
    base = "/_synapse/admin/v1"
    return [
        ("POST", f"{base}/media/quarantine/{{serverName}}/{{mediaId}}", handlers.quarantine),
        ("POST", f"{base}/media/unquarantine/{{serverName}}/{{mediaId}}", handlers.unquarantine),
        ("POST", f"{base}/room/{{roomId}}/media/quarantine", handlers.quarantine_room_media),
        ("POST", f"{base}/quarantine_media/{{roomId}}", handlers.quarantine_room_media),
        ("POST", f"{base}/user/{{userId}}/media/quarantine", handlers.quarantine_user_media),
        ("POST", f"{base}/media/protect/{{mediaId}}", handlers.protect),
        ("POST", f"{base}/media/unprotect/{{mediaId}}", handlers.unprotect),
        ("GET", f"{base}/room/{{roomId}}/media", handlers.list_room_media),
        ("POST", f"{base}/media/delete", handlers.delete_media_by_date_size),
        ("POST", f"{base}/media/{{serverName}}/delete", handlers.delete_media_by_date_size),
        ("GET", f"{base}/media/{{serverName}}/{{mediaId}}", handlers.get_media_info),
        ("DELETE", f"{base}/media/{{serverName}}/{{mediaId}}", handlers.delete_media),
        ("POST", f"{base}/purge_media_cache", handlers.purge_media_cache),
    ]

"""Media admin endpoints in Synapse's shape (admins only).

- ``POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}`` and
  ``.../media/unquarantine/...``: quarantined media is answered with 404. Remote
  media can be quarantined before it is cached: it is then never fetched.
- ``DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}``: local media only.
- ``POST /_synapse/admin/v1/purge_media_cache?before_ts=``: drop cached remote media.
"""

from __future__ import annotations

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.errors import MissingParam
from homeserver.http.body import query_int
from homeserver.media.service import MediaService


class MediaAdminHandlers:
    def __init__(self, ctx: ClientContext, media: MediaService) -> None:
        self._ctx = ctx
        self._media = media

    async def quarantine(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/quarantine/{serverName}/{mediaId}."""
        await require_admin(self._ctx, request)
        await self._media.set_quarantined(
            request.match_info["serverName"], request.match_info["mediaId"], True
        )
        return json_response({})

    async def unquarantine(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/media/unquarantine/{serverName}/{mediaId}."""
        await require_admin(self._ctx, request)
        await self._media.set_quarantined(
            request.match_info["serverName"], request.match_info["mediaId"], False
        )
        return json_response({})

    async def delete_media(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/media/{serverName}/{mediaId}."""
        await require_admin(self._ctx, request)
        media_id = request.match_info["mediaId"]
        await self._media.delete_local(request.match_info["serverName"], media_id)
        return json_response({"deleted_media": [media_id], "total": 1})

    async def purge_media_cache(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/purge_media_cache?before_ts=<ms>."""
        await require_admin(self._ctx, request)
        if "before_ts" not in request.query:
            raise MissingParam("Missing query parameter: before_ts")
        before_ts = query_int(request, "before_ts", 0)
        deleted = await self._media.purge_remote_cache(before_ts)
        return json_response({"deleted": deleted})


def media_admin_routes(ctx: ClientContext, media: MediaService) -> list[Route]:
    handlers = MediaAdminHandlers(ctx, media)
    base = "/_synapse/admin/v1"
    return [
        ("POST", f"{base}/media/quarantine/{{serverName}}/{{mediaId}}", handlers.quarantine),
        ("POST", f"{base}/media/unquarantine/{{serverName}}/{{mediaId}}", handlers.unquarantine),
        ("DELETE", f"{base}/media/{{serverName}}/{{mediaId}}", handlers.delete_media),
        ("POST", f"{base}/purge_media_cache", handlers.purge_media_cache),
    ]

"""Admin view of outbound federation health (Synapse admin API shape):

- ``GET /_synapse/admin/v1/federation/destinations``: every destination this server
  has sent to, with ``retry_last_ts``, ``retry_interval``, ``failure_ts`` and
  ``last_successful_stream_ordering``; paginated with ``from`` / ``limit``;
- ``GET /_synapse/admin/v1/federation/destinations/{destination}``: one of them;
- ``GET /_synapse/admin/v1/federation/destinations/{destination}/rooms``: the rooms
  whose events were queued for it, each with the stream ordering of the latest one
  (paginated with ``from`` / ``limit``, by room ID, ``dir`` ``f`` or ``b``);
- ``POST /_synapse/admin/v1/federation/destinations/{destination}/reset_connection``:
  cancel the backoff of a failing destination and send its queue now.

Server admins only (``require_admin``).
"""

from __future__ import annotations

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.admin.paging import direction_of
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.admin.destinations import DestinationAdmin
from homeserver.http.body import query_int

MAX_LIMIT = 1000


class FederationAdminHandlers:
    def __init__(self, ctx: ClientContext, destinations: DestinationAdmin) -> None:
        self._ctx = ctx
        self._destinations = destinations

    async def list_destinations(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/federation/destinations."""
        await require_admin(self._ctx, request)
        start = query_int(request, "from", 0, minimum=0)
        limit = query_int(request, "limit", 100, minimum=0, maximum=MAX_LIMIT)
        rows, total = await self._destinations.list(limit, start)
        body: dict[str, object] = {"destinations": [r.to_json() for r in rows], "total": total}
        if start + len(rows) < total:
            body["next_token"] = str(start + len(rows))
        return json_response(body)

    async def get_destination(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/federation/destinations/{destination}."""
        await require_admin(self._ctx, request)
        health = await self._destinations.get(request.match_info["destination"])
        return json_response(health.to_json())

    async def list_destination_rooms(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/federation/destinations/{destination}/rooms."""
        await require_admin(self._ctx, request)
        start = query_int(request, "from", 0, minimum=0)
        limit = query_int(request, "limit", 100, minimum=0, maximum=MAX_LIMIT)
        forwards = direction_of(request, "f") == "f"
        rooms, total = await self._destinations.rooms(
            request.match_info["destination"], limit, start, forwards=forwards
        )
        body: dict[str, object] = {
            "rooms": [{"room_id": room_id, "stream_ordering": so} for room_id, so in rooms],
            "total": total,
        }
        if start + limit < total:
            body["next_token"] = str(start + len(rooms))
        return json_response(body)

    async def reset_connection(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/federation/destinations/{destination}/reset_connection."""
        await require_admin(self._ctx, request)
        await self._destinations.reset_connection(request.match_info["destination"])
        return json_response({})


def federation_admin_routes(ctx: ClientContext, destinations: DestinationAdmin) -> list[Route]:
    handlers = FederationAdminHandlers(ctx, destinations)
    base = "/_synapse/admin/v1/federation/destinations"
    return [
        ("GET", base, handlers.list_destinations),
        ("GET", f"{base}/{{destination}}", handlers.get_destination),
        ("GET", f"{base}/{{destination}}/rooms", handlers.list_destination_rooms),
        ("POST", f"{base}/{{destination}}/reset_connection", handlers.reset_connection),
    ]

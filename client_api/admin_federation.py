"""Admin view of outbound federation health (Synapse admin API shape):

- ``GET /_synapse/admin/v1/federation/destinations``: every destination this server
  has sent to, with ``retry_last_ts``, ``retry_interval``, ``failure_ts`` and
  ``last_successful_stream_ordering``; paginated with ``from`` / ``limit``;
- ``GET /_synapse/admin/v1/federation/destinations/{destination}``: one of them.

Server admins only (``require_admin``).
"""

from __future__ import annotations

from aiohttp import web

from client_api.admin import require_admin
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.errors import NotFound
from homeserver.http.body import query_int
from storage.federation_queue import FederationQueueStore

MAX_LIMIT = 1000


class FederationAdminHandlers:
    def __init__(self, ctx: ClientContext, queue: FederationQueueStore) -> None:
        self._ctx = ctx
        self._queue = queue

    async def list_destinations(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/federation/destinations."""
        await require_admin(self._ctx, request)
        start = query_int(request, "from", 0, minimum=0)
        limit = query_int(request, "limit", 100, minimum=0, maximum=MAX_LIMIT)
        rows, total = await self._queue.list_health(limit, start)
        body: dict[str, object] = {"destinations": [r.to_json() for r in rows], "total": total}
        if start + len(rows) < total:
            body["next_token"] = str(start + len(rows))
        return json_response(body)

    async def get_destination(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/federation/destinations/{destination}."""
        await require_admin(self._ctx, request)
        health = await self._queue.get_health(request.match_info["destination"])
        if health is None:
            raise NotFound("Unknown destination")
        return json_response(health.to_json())


def federation_admin_routes(ctx: ClientContext, queue: FederationQueueStore) -> list[Route]:
    handlers = FederationAdminHandlers(ctx, queue)
    base = "/_synapse/admin/v1/federation/destinations"
    return [
        ("GET", base, handlers.list_destinations),
        ("GET", f"{base}/{{destination}}", handlers.get_destination),
    ]

"""Relations and threads: GET /relations/... and GET /threads (client-server API v1).

Client-server API "Relationships API" and "Threading: Querying threads in a room".
The rules live in ``homeserver.rooms.relations``.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.messages import direction
from client_api.versions import json_response
from homeserver.errors import InvalidParam
from homeserver.http.body import query_bool, query_int

DEFAULT_RELATIONS_LIMIT = 5
DEFAULT_THREADS_LIMIT = 5
MAX_LIMIT = 1000


class RelationHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def get_relations(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/relations/{eventId}[/{relType}[/{eventType}]].

        getRelatingEvents, getRelatingEventsWithRelType(AndEventType).
        """
        requester = await self._ctx.requester(request)
        info = request.match_info
        limit = query_int(request, "limit", DEFAULT_RELATIONS_LIMIT, maximum=MAX_LIMIT)
        backwards = direction(request, default="b")
        recurse = query_bool(request, "recurse", False)
        page = await self._ctx.relations.relations(
            requester.user_id,
            info["roomId"],
            info["eventId"],
            rel_type=info.get("relType"),
            event_type=info.get("eventType"),
            from_token=request.query.get("from") or None,
            to_token=request.query.get("to") or None,
            limit=limit,
            backwards=backwards,
            recurse=recurse,
        )
        body: dict[str, Any] = {
            "chunk": await self._ctx.serializer.serialize(
                page.chunk, user_id=requester.user_id, device_id=requester.device_id
            )
        }
        if page.next_batch is not None:
            body["next_batch"] = page.next_batch
        if page.prev_batch is not None:
            body["prev_batch"] = page.prev_batch
        if "recurse" in request.query and page.recursion_depth is not None:
            body["recursion_depth"] = page.recursion_depth
        elif "recurse" in request.query:
            body["recursion_depth"] = 1
        return json_response(body)

    async def get_threads(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/rooms/{roomId}/threads (getThreadRoots)."""
        requester = await self._ctx.requester(request)
        include = request.query.get("include", "all")
        if include not in ("all", "participated"):
            raise InvalidParam("Query parameter 'include' must be 'all' or 'participated'")
        limit = query_int(request, "limit", DEFAULT_THREADS_LIMIT, minimum=1, maximum=MAX_LIMIT)
        page = await self._ctx.relations.threads(
            requester.user_id,
            request.match_info["roomId"],
            participated_only=include == "participated",
            from_token=request.query.get("from") or None,
            limit=limit,
        )
        body: dict[str, Any] = {
            "chunk": await self._ctx.serializer.serialize(
                page.chunk, user_id=requester.user_id, device_id=requester.device_id
            )
        }
        if page.next_batch is not None:
            body["next_batch"] = page.next_batch
        return json_response(body)

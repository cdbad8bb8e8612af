"""POST /_matrix/client/unstable/org.matrix.simplified_msc3575/sync (MSC4186)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import json_object, query_int

# Long-polls are capped so a client cannot hold a request open for hours.
MAX_TIMEOUT_MS = 5 * 60 * 1000
PATH = "/_matrix/client/unstable/org.matrix.simplified_msc3575/sync"


class SlidingSyncHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def sync(self, request: web.Request) -> web.Response:
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        result = await self._ctx.sliding_sync.sync(
            requester.user_id,
            requester.device_id,
            body,
            request.query.get("pos") or None,
            query_int(request, "timeout", 0, maximum=MAX_TIMEOUT_MS),
        )
        return json_response(result)

"""GET /sync (client-server API: "Syncing")."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import InvalidParam
from homeserver.http.body import query_bool, query_int
from homeserver.request_context import set_request_tag
from homeserver.streams import SyncToken
from homeserver.sync.service import PRESENCE_STATES, SyncRequest

# Long-polls are capped so a client cannot hold a request open for hours.
MAX_TIMEOUT_MS = 5 * 60 * 1000


def sync_tag(incremental: bool, full_state: bool) -> str:
    """The kind of sync, Synapse's ``tag`` label of its HTTP metrics."""
    if not incremental:
        return "sync_v2:initial_sync"
    return "sync_v2:full_state_sync" if full_state else "sync_v2:incremental_sync"


class SyncHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def sync(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/sync (operation sync)."""
        requester = await self._ctx.requester(request)
        query = request.query
        since_raw = query.get("since")
        since = SyncToken.parse(since_raw) if since_raw else None
        set_presence = query.get("set_presence", "online")
        if set_presence not in PRESENCE_STATES:
            raise InvalidParam("set_presence must be one of " + ", ".join(PRESENCE_STATES))
        sync_filter = await self._ctx.sync.resolve_filter(requester.user_id, query.get("filter"))
        full_state = query_bool(request, "full_state", False)
        set_request_tag(sync_tag(since is not None, full_state))
        await self._ctx.registration.on_user_syncing(requester.user_id)
        body = await self._ctx.sync.sync(
            SyncRequest(
                user_id=requester.user_id,
                device_id=requester.device_id,
                since=since,
                filter=sync_filter,
                full_state=full_state,
                timeout_ms=query_int(request, "timeout", 0, maximum=MAX_TIMEOUT_MS),
                set_presence=set_presence,
                use_state_after=query_bool(request, "use_state_after", False),
            )
        )
        return json_response(body)

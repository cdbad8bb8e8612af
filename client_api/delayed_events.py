"""MSC4140 delayed events management, at Synapse's unstable paths:
``GET /_matrix/client/unstable/org.matrix.msc4140/delayed_events`` (the user's
pending events) and ``POST .../delayed_events/{delayId}`` with an ``action`` (or
``.../{delayId}/cancel|restart|send``). The delay ID is the secret: managing an event
needs no access token, and is rate limited per user or per address."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext, access_token_of, client_ip
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.errors import InvalidParam
from homeserver.http.body import get_str, json_object
from homeserver.ratelimit import RateLimit

PREFIX = "/_matrix/client/unstable/org.matrix.msc4140/delayed_events"
ACTIONS = ("cancel", "restart", "send")


class DelayedEventHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        rc = ctx.config.rc_delayed_event_mgmt
        self._limit = RateLimit(rc.per_second, rc.burst_count)

    async def _limit_caller(self, request: web.Request) -> None:
        if access_token_of(request) is not None:
            requester = await self._ctx.requester(request)
            self._ctx.limiter.check_requester("delayed_event_mgmt", requester, self._limit)
        else:
            self._ctx.limiter.check("delayed_event_mgmt", client_ip(request), self._limit)

    async def list_pending(self, request: web.Request) -> web.Response:
        requester = await self._ctx.requester(request)
        self._ctx.limiter.check_requester("delayed_event_mgmt", requester, self._limit)
        return json_response(
            {"delayed_events": await self._ctx.delayed_events.pending(requester.user_id)}
        )

    async def update(self, request: web.Request) -> web.Response:
        body = await json_object(request)
        action = get_str(body, "action")
        if action not in ACTIONS:
            raise InvalidParam("'action' is not one of 'cancel', 'restart', 'send'")
        return await self._act(request, action)

    async def cancel(self, request: web.Request) -> web.Response:
        return await self._act(request, "cancel")

    async def restart(self, request: web.Request) -> web.Response:
        return await self._act(request, "restart")

    async def send(self, request: web.Request) -> web.Response:
        return await self._act(request, "send")

    async def _act(self, request: web.Request, action: str) -> web.Response:
        await self._limit_caller(request)
        delay_id = request.match_info["delayId"]
        service = self._ctx.delayed_events
        if action == "cancel":
            await service.cancel(delay_id)
        elif action == "restart":
            await service.restart(delay_id)
        else:
            await service.send_now(delay_id)
        return json_response({})


def delayed_event_routes(ctx: ClientContext) -> list[Route]:
    handlers = DelayedEventHandlers(ctx)
    return [
        ("GET", PREFIX, handlers.list_pending),
        ("POST", f"{PREFIX}/{{delayId}}", handlers.update),
        ("POST", f"{PREFIX}/{{delayId}}/cancel", handlers.cancel),
        ("POST", f"{PREFIX}/{{delayId}}/restart", handlers.restart),
        ("POST", f"{PREFIX}/{{delayId}}/send", handlers.send),
    ]

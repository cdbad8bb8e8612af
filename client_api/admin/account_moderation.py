"""Account moderation in the client-server API (spec v1.18, "Server administration"):
``GET``/``PUT /_matrix/client/v1/admin/suspend/{userId}`` and ``.../lock/{userId}``,
for server admins, over the same flags as Synapse's admin API."""

from __future__ import annotations

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.admin.users import UserAdmin
from homeserver.http.body import get_bool, json_object

PREFIX = "/_matrix/client/v1/admin"
# the path segment and the flag it reads and sets
FLAGS = {"suspend": "suspended", "lock": "locked"}


class AccountModerationHandlers:
    def __init__(self, ctx: ClientContext, users: UserAdmin, segment: str) -> None:
        self._ctx = ctx
        self._users = users
        self._flag = FLAGS[segment]

    async def get(self, request: web.Request) -> web.Response:
        await require_admin(self._ctx, request)
        row = await self._users.moderated_account(request.match_info["userId"])
        return json_response({self._flag: getattr(row, self._flag)})

    async def put(self, request: web.Request) -> web.Response:
        requester = await require_admin(self._ctx, request)
        body = await json_object(request)
        value = get_bool(body, self._flag)
        await self._users.moderate_account(
            requester.user_id, request.match_info["userId"], self._flag, value
        )
        return json_response({self._flag: value})


def account_moderation_routes(ctx: ClientContext, users: UserAdmin) -> list[Route]:
    routes: list[Route] = []
    for segment in FLAGS:
        handlers = AccountModerationHandlers(ctx, users, segment)
        routes += [
            ("GET", f"{PREFIX}/{segment}/{{userId}}", handlers.get),
            ("PUT", f"{PREFIX}/{segment}/{{userId}}", handlers.put),
        ]
    return routes

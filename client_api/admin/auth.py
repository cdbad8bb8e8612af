"""The one gate of every admin endpoint: a server admin's access token."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from homeserver.auth import Requester
from homeserver.errors import Forbidden


async def require_admin(ctx: ClientContext, request: web.Request) -> Requester:
    """Authenticate the request and require a server admin (403 M_FORBIDDEN otherwise)."""
    requester = await ctx.requester(request)
    if not await ctx.accounts.is_admin(requester.user_id):
        raise Forbidden("You are not a server admin")
    return requester

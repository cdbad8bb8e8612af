"""``GET /_matrix/federation/v1/openid/userinfo`` (server-server "OpenID"): whose an
OpenID token is. The caller is a third party, not a homeserver: the token in the
query is the only authentication (no X-Matrix). Served by the ``federation`` and the
``openid`` listener resources, as Synapse."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from homeserver.http.middleware import compact_dumps
from homeserver.openid import OpenIdService

USERINFO_PATH = "/_matrix/federation/v1/openid/userinfo"


class OpenIdUserInfo:
    def __init__(self, openid: OpenIdService) -> None:
        self._openid = openid

    async def get(self, request: web.Request) -> web.Response:
        info = await self._openid.user_info(request.query.get("access_token"))
        return web.json_response(info, dumps=compact_dumps)

    def routes(self) -> list[tuple[str, str, Callable[[web.Request], Awaitable[web.Response]]]]:
        return [("GET", USERINFO_PATH, self.get)]

"""The client-server endpoints of application services: "Application service ping",
"Third-party Lookups" and "Application service room directories" (the appservice
published room lists)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.appservice.thirdparty import Kind
from homeserver.http.body import get_str, json_object


class AppServiceHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def ping(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v1/appservice/{appserviceId}/ping."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        transaction_id = get_str(body, "transaction_id", None)
        duration_ms = await self._ctx.appservice_ping.ping(
            requester.app_service, request.match_info["appserviceId"], transaction_id
        )
        return json_response({"duration_ms": duration_ms})

    async def get_protocols(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/thirdparty/protocols."""
        await self._ctx.requester(request)
        return json_response(await self._ctx.thirdparty.protocols())

    async def get_protocol(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/thirdparty/protocol/{protocol}."""
        await self._ctx.requester(request)
        return json_response(await self._ctx.thirdparty.protocol(request.match_info["protocol"]))

    async def query_location(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/thirdparty/location/{protocol}."""
        return await self._lookup(request, "location")

    async def query_user(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/thirdparty/user/{protocol}."""
        return await self._lookup(request, "user")

    async def query_location_by_alias(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/thirdparty/location?alias=."""
        await self._ctx.requester(request)
        found = await self._ctx.thirdparty.reverse_lookup("location", _fields(request))
        return json_response(found)

    async def query_user_by_id(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/thirdparty/user?userid=."""
        await self._ctx.requester(request)
        found = await self._ctx.thirdparty.reverse_lookup("user", _fields(request))
        return json_response(found)

    async def _lookup(self, request: web.Request, kind: Kind) -> web.Response:
        await self._ctx.requester(request)
        found = await self._ctx.thirdparty.lookup(
            kind, request.match_info["protocol"], _fields(request)
        )
        return json_response(found)

    async def publish_room(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        visibility = get_str(body, "visibility", "public")
        await self._ctx.directory.set_appservice_visibility(
            requester.app_service,
            request.match_info["networkId"],
            request.match_info["roomId"],
            visibility,
        )
        return json_response({})

    async def unpublish_room(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/directory/list/appservice/{networkId}/{roomId}."""
        requester = await self._ctx.requester(request)
        await self._ctx.directory.set_appservice_visibility(
            requester.app_service,
            request.match_info["networkId"],
            request.match_info["roomId"],
            "private",
        )
        return json_response({})


def _fields(request: web.Request) -> dict[str, str | list[str]]:
    """The query parameters passed on to the services (not the client's credentials,
    nor the identity it asserts)."""
    fields: dict[str, str | list[str]] = {}
    for key in request.query:
        if key in ("access_token", "user_id") or key in fields:
            continue
        values = request.query.getall(key)
        fields[key] = values[0] if len(values) == 1 else list(values)
    return fields

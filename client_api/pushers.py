"""Pushers (client-server API: Push Notifications, pusher.yaml: getPushers, postPusher)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import BadJson, MissingParam
from homeserver.http.body import get_bool, get_dict, get_str, json_object
from homeserver.push.pushers import PusherRequest, pusher_json

_REQUIRED_UNLESS_DELETING = ("app_display_name", "device_display_name", "lang", "data")


class PusherHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        self._pushers = ctx.push.pushers

    async def get_pushers(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/pushers (getPushers)."""
        requester = await self._ctx.requester(request)
        pushers = await self._pushers.get_pushers(requester.user_id)
        return json_response({"pushers": [pusher_json(p) for p in pushers]})

    async def set_pusher(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/pushers/set (postPusher): create, update or delete."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        if "kind" not in body:
            raise MissingParam("Missing parameter: kind")
        app_id = get_str(body, "app_id")
        pushkey = get_str(body, "pushkey")
        kind = body["kind"]
        if kind is None:
            await self._pushers.remove(requester.user_id, app_id, pushkey)
            return json_response({})
        if not isinstance(kind, str):
            raise BadJson("'kind' must be a string or null")
        missing = [key for key in _REQUIRED_UNLESS_DELETING if body.get(key) is None]
        if missing:
            raise MissingParam(f"Missing parameters: {', '.join(missing)}")
        pusher = PusherRequest(
            app_id=app_id,
            pushkey=pushkey,
            kind=kind,
            app_display_name=get_str(body, "app_display_name"),
            device_display_name=get_str(body, "device_display_name"),
            profile_tag=get_str(body, "profile_tag", None),
            lang=get_str(body, "lang"),
            data=get_dict(body, "data"),
            append=get_bool(body, "append", False),
        )
        await self._pushers.set_pusher(requester.user_id, requester.device_id, pusher)
        return json_response({})

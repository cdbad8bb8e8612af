"""Profiles (client-server API: Profiles)."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.auth import require_not_suspended
from homeserver.errors import MissingParam, NotFound
from homeserver.http.body import json_object


class ProfileHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def get_profile(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/profile/{userId}."""
        profile = await self._ctx.profiles.get_profile(request.match_info["userId"])
        return json_response(profile)

    async def get_profile_field(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/profile/{userId}/{keyName}."""
        key = request.match_info["keyName"]
        self._ctx.profiles.check_key(key)
        profile = await self._ctx.profiles.get_profile(request.match_info["userId"])
        if key not in profile:
            raise NotFound("Profile field not found")
        return json_response({key: profile[key]})

    async def set_profile_field(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/profile/{userId}/{keyName}."""
        requester = await self._ctx.requester(request)
        require_not_suspended(requester, "Changing the profile")
        key = request.match_info["keyName"]
        self._ctx.profiles.check_key(key)
        body = await json_object(request)
        if key not in body:
            raise MissingParam(f"Missing key '{key}'")
        await self._ctx.profiles.set_field(
            requester.user_id,
            request.match_info["userId"],
            key,
            body[key],
            any_uri=requester.app_service is not None,
        )
        return json_response({})

    async def delete_profile_field(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/profile/{userId}/{keyName}."""
        requester = await self._ctx.requester(request)
        require_not_suspended(requester, "Changing the profile")
        await self._ctx.profiles.delete_field(
            requester.user_id, request.match_info["userId"], request.match_info["keyName"]
        )
        return json_response({})

"""The user's own account: whoami, password change, deactivation."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.auth import require_not_guest
from homeserver.http.body import get_bool, get_str, json_object

PASSWORD_FLOWS = [["m.login.password"]]


class AccountHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def whoami(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/account/whoami."""
        requester = await self._ctx.requester(request)
        body: dict[str, object] = {"user_id": requester.user_id, "is_guest": requester.is_guest}
        if requester.device_id:
            # (an application service acting without a device has none)
            body["device_id"] = requester.device_id
        return json_response(body)

    async def change_password(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/password (UIA: m.login.password)."""
        requester = await self._ctx.requester(request)
        require_not_guest(requester)
        body = await json_object(request)
        new_password = self._ctx.accounts.check_password_shape(get_str(body, "new_password"))
        logout_devices = get_bool(body, "logout_devices", True)
        result = await self._ctx.uia.authenticate_user(
            "POST /account/password", body, requester.user_id
        )
        await self._ctx.accounts.change_password(
            requester.user_id,
            new_password,
            keep_device=requester.device_id,
            logout_devices=logout_devices,
        )
        await self._ctx.uia.finish(result.session_id)
        return json_response({})

    async def deactivate(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/account/deactivate (UIA: m.login.password; an
        application service deactivates its users without it)."""
        requester = await self._ctx.requester(request)
        require_not_guest(requester)
        body = await json_object(request, allow_empty=True)
        erase = get_bool(body, "erase", False)
        if requester.app_service is not None:
            await self._ctx.accounts.deactivate(requester.user_id, erase=erase)
            return json_response({"id_server_unbind_result": "no-support"})
        result = await self._ctx.uia.authenticate_user(
            "POST /account/deactivate", body, requester.user_id
        )
        await self._ctx.accounts.deactivate(requester.user_id, erase=erase)
        await self._ctx.uia.finish(result.session_id)
        return json_response({"id_server_unbind_result": "no-support"})

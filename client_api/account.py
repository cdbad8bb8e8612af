"""The user's own account: whoami, password change, deactivation."""

from __future__ import annotations

from aiohttp import web

from client_api.context import ClientContext, access_token_of
from client_api.versions import json_response
from homeserver.auth import require_not_guest
from homeserver.http.body import get_bool, get_str, json_object
from homeserver.threepids import EMAIL_STAGE

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
        """POST /_matrix/client/v3/account/password (UIA: m.login.password); without
        an access token, a password reset proved by m.login.email.identity."""
        if "Authorization" not in request.headers and access_token_of(request) is None:
            return await self._reset_password(request)
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

    async def _reset_password(self, request: web.Request) -> web.Response:
        """Password reset: the address proved by the email stage names the account."""
        body = await json_object(request)
        new_password = self._ctx.accounts.check_password_shape(get_str(body, "new_password"))
        logout_devices = get_bool(body, "logout_devices", True)
        result = await self._ctx.uia.authenticate("POST /account/password", body, [[EMAIL_STAGE]])
        user_id = await self._ctx.threepids.user_for_password_reset(result.completed)
        await self._ctx.accounts.change_password(
            user_id, new_password, keep_device=None, logout_devices=logout_devices
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
        id_server = get_str(body, "id_server", None)
        session_id = None
        if requester.app_service is None:
            result = await self._ctx.uia.authenticate_user(
                "POST /account/deactivate", body, requester.user_id
            )
            session_id = result.session_id
        # bindings made through this server are unbound before the account goes
        unbound = await self._ctx.threepids.unbind_all(requester.user_id, id_server)
        await self._ctx.accounts.deactivate(requester.user_id, erase=erase)
        if session_id is not None:
            await self._ctx.uia.finish(session_id)
        return json_response({"id_server_unbind_result": "success" if unbound else "no-support"})

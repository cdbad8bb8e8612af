"""Device management (client-server API: Device management)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.http.body import get_str, get_str_list, json_object
from storage.devices import DeviceRecord


def device_json(device: DeviceRecord) -> dict[str, Any]:
    body: dict[str, Any] = {"device_id": device.device_id}
    if device.display_name is not None:
        body["display_name"] = device.display_name
    if device.last_seen_ts is not None:
        body["last_seen_ts"] = device.last_seen_ts
    if device.last_seen_ip is not None:
        body["last_seen_ip"] = device.last_seen_ip
    return body


class DeviceHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def get_devices(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/devices."""
        requester = await self._ctx.requester(request)
        devices = await self._ctx.sessions.devices(requester.user_id)
        return json_response({"devices": [device_json(d) for d in devices]})

    async def get_device(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/devices/{deviceId}."""
        requester = await self._ctx.requester(request)
        device = await self._ctx.sessions.device(requester.user_id, request.match_info["deviceId"])
        return json_response(device_json(device))

    async def update_device(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/devices/{deviceId}; an application service creates
        the device of its user when it does not exist (201)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        display_name = get_str(body, "display_name", None)
        if requester.app_service is not None:
            created = await self._ctx.appservice_users.upsert_device(
                requester.user_id, request.match_info["deviceId"], display_name
            )
            return json_response({}, status=201 if created else 200)
        await self._ctx.sessions.rename_device(
            requester.user_id, request.match_info["deviceId"], display_name
        )
        return json_response({})

    async def delete_device(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/devices/{deviceId} (UIA, but not for an
        application service)."""
        requester = await self._ctx.requester(request)
        device_id = request.match_info["deviceId"]
        body = await json_object(request, allow_empty=True)
        await self._ctx.sessions.device(requester.user_id, device_id)  # M_NOT_FOUND if none
        if requester.app_service is not None:
            await self._ctx.sessions.delete_devices(requester.user_id, [device_id])
            return json_response({})
        result = await self._ctx.uia.authenticate_user(
            f"DELETE /devices/{device_id}", body, requester.user_id
        )
        await self._ctx.sessions.delete_devices(requester.user_id, [device_id])
        await self._ctx.uia.finish(result.session_id)
        return json_response({})

    async def delete_devices(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/delete_devices (UIA, but not for an application
        service)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        device_ids = get_str_list(body, "devices")
        if requester.app_service is not None:
            await self._ctx.sessions.delete_devices(requester.user_id, list(device_ids))
            return json_response({})
        result = await self._ctx.uia.authenticate_user(
            "POST /delete_devices", body, requester.user_id
        )
        await self._ctx.sessions.delete_devices(requester.user_id, list(device_ids))
        await self._ctx.uia.finish(result.session_id)
        return json_response({})

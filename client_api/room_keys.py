"""Server-side key backup endpoints (client-server "Server-side key backups")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import BadJson, InvalidParam, MissingParam, NotFound
from homeserver.http.body import get_bool, get_dict, get_int, get_str, json_object
from storage.key_backup import BackedUpKey


def _opaque(body: dict[str, Any], key: str) -> Any:
    """A required field the server keeps without reading it (``auth_data``,
    ``session_data``): any JSON value but null. The spec describes objects; Synapse
    stores whatever a client sends (SyTest sends strings), and so do we."""
    value = body.get(key)
    if value is None:
        raise MissingParam(f"Missing parameter: {key}")
    return value


def _key_data(room_id: str, session_id: str, data: Any) -> BackedUpKey:
    """One ``KeyBackupData`` object, checked."""
    if not isinstance(data, dict):
        raise BadJson(f"Key data of {session_id} must be an object")
    first_message_index = get_int(data, "first_message_index")
    forwarded_count = get_int(data, "forwarded_count")
    if first_message_index < 0 or forwarded_count < 0:
        raise InvalidParam("first_message_index and forwarded_count must not be negative")
    return BackedUpKey(
        room_id,
        session_id,
        first_message_index,
        forwarded_count,
        get_bool(data, "is_verified"),
        _opaque(data, "session_data"),
    )


def _sessions(room_id: str, room: Any) -> dict[str, BackedUpKey]:
    if not isinstance(room, dict):
        raise BadJson(f"Backup of room {room_id} must be an object")
    sessions = get_dict(room, "sessions")
    return {s: _key_data(room_id, s, data) for s, data in sessions.items()}


def _version_param(request: web.Request) -> str:
    version = request.query.get("version")
    if version is None:
        raise MissingParam("Missing query parameter: version")
    return version


class RoomKeyHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    # -- versions ---------------------------------------------------------------------

    async def create_version(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/room_keys/version."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        algorithm = get_str(body, "algorithm")
        auth_data = _opaque(body, "auth_data")
        version = await self._ctx.e2ee.backup.create_version(
            requester.user_id, algorithm, auth_data
        )
        return json_response({"version": version})

    async def get_version(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/room_keys/version[/{version}]."""
        requester = await self._ctx.requester(request)
        version = request.match_info.get("version")
        info = await self._ctx.e2ee.backup.get_version_info(requester.user_id, version)
        return json_response(info)

    async def update_version(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/room_keys/version/{version}."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        await self._ctx.e2ee.backup.update_version(
            requester.user_id,
            request.match_info["version"],
            get_str(body, "algorithm"),
            _opaque(body, "auth_data"),
            get_str(body, "version", None),
        )
        return json_response({})

    async def delete_version(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/room_keys/version/{version}."""
        requester = await self._ctx.requester(request)
        await self._ctx.e2ee.backup.delete_version(requester.user_id, request.match_info["version"])
        return json_response({})

    # -- keys -------------------------------------------------------------------------

    async def put_keys(self, request: web.Request) -> web.Response:
        """PUT /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]?version=."""
        requester = await self._ctx.requester(request)
        version = _version_param(request)
        body = await json_object(request)
        room_id = request.match_info.get("roomId")
        session_id = request.match_info.get("sessionId")
        if room_id is not None and session_id is not None:
            keys = {room_id: {session_id: _key_data(room_id, session_id, body)}}
        elif room_id is not None:
            keys = {room_id: _sessions(room_id, body)}
        else:
            rooms = get_dict(body, "rooms")
            keys = {r: _sessions(r, room) for r, room in rooms.items()}
        result = await self._ctx.e2ee.backup.put_keys(requester.user_id, version, keys)
        return json_response(result)

    async def get_keys(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]?version=."""
        requester = await self._ctx.requester(request)
        version = _version_param(request)
        room_id = request.match_info.get("roomId")
        session_id = request.match_info.get("sessionId")
        keys = await self._ctx.e2ee.backup.get_keys(requester.user_id, version, room_id, session_id)
        if session_id is not None:
            if not keys:
                raise NotFound("Key not found.")
            return json_response(keys[0].to_json())
        if room_id is not None:
            return json_response({"sessions": {k.session_id: k.to_json() for k in keys}})
        rooms: dict[str, Any] = {}
        for key in keys:
            rooms.setdefault(key.room_id, {"sessions": {}})["sessions"][key.session_id] = (
                key.to_json()
            )
        return json_response({"rooms": rooms})

    async def delete_keys(self, request: web.Request) -> web.Response:
        """DELETE /_matrix/client/v3/room_keys/keys[/{roomId}[/{sessionId}]]?version=."""
        requester = await self._ctx.requester(request)
        version = _version_param(request)
        result = await self._ctx.e2ee.backup.delete_keys(
            requester.user_id,
            version,
            request.match_info.get("roomId"),
            request.match_info.get("sessionId"),
        )
        return json_response(result)

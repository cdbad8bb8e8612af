"""End-to-end encryption key endpoints (client-server "End-to-End Encryption":
Key management API and Cross-signing)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.errors import BadJson, InvalidParam, MissingParam
from homeserver.events import is_valid_user_id
from homeserver.http.body import get_dict, get_int, json_object
from homeserver.streams import SyncToken

MAX_TIMEOUT_MS = 60_000


def _user_map(body: dict[str, Any], key: str) -> dict[str, Any]:
    """A required map keyed by user ID (``device_keys`` / ``one_time_keys``)."""
    value: dict[str, Any] = get_dict(body, key)
    for user_id in value:
        if not is_valid_user_id(user_id):
            raise InvalidParam(f"'{key}': {user_id!r} is not a user ID")
    return value


def _timeout(body: dict[str, Any]) -> int:
    timeout = get_int(body, "timeout", 10_000)
    if timeout < 0:
        raise InvalidParam("'timeout' must not be negative")
    return int(min(timeout, MAX_TIMEOUT_MS))


class KeyHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx

    async def upload_keys(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/upload."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        device_keys = get_dict(body, "device_keys", None)
        one_time_keys = get_dict(body, "one_time_keys", {})
        fallback_keys = get_dict(body, "fallback_keys", {})
        counts = await self._ctx.e2ee.keys.upload(
            requester.user_id, requester.device_id, device_keys, one_time_keys, fallback_keys
        )
        return json_response({"one_time_key_counts": counts})

    async def query_keys(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/query."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        timeout = _timeout(body)
        wanted = _user_map(body, "device_keys")
        for user_id, devices in wanted.items():
            if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
                raise BadJson(f"device_keys.{user_id} must be an array of device IDs")
        result = await self._ctx.e2ee.keys.query(requester.user_id, wanted, timeout)
        return json_response(result)

    async def claim_keys(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/claim."""
        await self._ctx.requester(request)
        body = await json_object(request)
        timeout = _timeout(body)
        wanted = _user_map(body, "one_time_keys")
        for user_id, devices in wanted.items():
            if not isinstance(devices, dict) or not all(
                isinstance(a, str) for a in devices.values()
            ):
                raise BadJson(f"one_time_keys.{user_id} must map device IDs to algorithms")
        return json_response(await self._ctx.e2ee.keys.claim(wanted, timeout))

    async def get_keys_changes(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/keys/changes?from=&to=."""
        requester = await self._ctx.requester(request)
        tokens = []
        for name in ("from", "to"):
            raw = request.query.get(name)
            if raw is None:
                raise MissingParam(f"Missing query parameter: {name}")
            tokens.append(SyncToken.parse(raw))
        since, upto = tokens
        changes = await self._ctx.e2ee.device_lists.device_lists(requester.user_id, since, upto)
        return json_response(changes.to_json())

    async def upload_device_signing_keys(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/device_signing/upload (UIA unless first upload)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        cross_signing = self._ctx.e2ee.cross_signing
        keys = cross_signing.keys_of_request(body, requester.user_id)
        session_id = None
        if await cross_signing.needs_uia(requester.user_id, keys):
            result = await self._ctx.uia.authenticate_user(
                "POST /keys/device_signing/upload", body, requester.user_id
            )
            session_id = result.session_id
        await cross_signing.upload_keys(requester.user_id, keys)
        if session_id is not None:
            await self._ctx.uia.finish(session_id)
        return json_response({})

    async def upload_signatures(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/keys/signatures/upload."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        for user_id, by_key in body.items():
            if not is_valid_user_id(user_id):
                raise InvalidParam(f"{user_id!r} is not a user ID")
            if not isinstance(by_key, dict):
                raise BadJson(f"'{user_id}' must map key IDs to signed objects")
        failures = await self._ctx.e2ee.cross_signing.upload_signatures(requester.user_id, body)
        return json_response({"failures": failures})

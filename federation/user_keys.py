"""End-to-end encryption keys over federation, served and asked (s2s "End-to-End
Encryption", "Device Management").

Served (X-Matrix authenticated, our users only, else 400 ``M_INVALID_PARAM``):

* ``POST /user/keys/query`` -> ``E2eKeyService.query_local_keys`` (no user-signing keys);
* ``POST /user/keys/claim`` -> ``E2eKeyService.claim_local_keys`` (each key once);
* ``GET /user/devices/{userId}`` -> ``E2eKeyService.user_devices`` (404 for a user
  that does not exist).

Asked (:class:`RemoteKeyClient`, the ``remote_key_query`` / ``remote_key_claim`` /
``remote_master_key`` hooks and the resync fetcher of ``RemoteDeviceLists``): one
request per server with the client's timeout. Users we track are answered from the
device list cache (resynced through ``/user/devices`` when needed); the others, and
those whose resync failed, are asked with one ``/user/keys/query``. The answers of
remote servers are kept only for the users asked and checked against them.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from aiohttp import web

from federation.auth import FederationAuthenticator
from federation.errors import FederationDenied
from federation.requester import FederationRequester
from federation.routes import FEDERATION_V1, Route
from homeserver.e2ee.keys import E2eKeyService
from homeserver.e2ee.remote import CachedKeys, RemoteDeviceLists, checked_cross_signing_keys
from homeserver.errors import BadJson, InvalidParam, NotFound
from homeserver.events import is_valid_user_id, server_name_of
from homeserver.http.body import get_dict, json_object
from homeserver.http.middleware import compact_dumps
from storage.stores import Stores

MIN_TIMEOUT_S = 1.0


def _local_user_map(body: dict[str, Any], key: str, server_name: str) -> dict[str, Any]:
    value: dict[str, Any] = get_dict(body, key)
    for user_id in value:
        if not is_valid_user_id(user_id):
            raise InvalidParam(f"'{key}': {user_id!r} is not a user ID")
        if server_name_of(user_id) != server_name:
            raise InvalidParam(f"'{key}': {user_id} is not a user of this server")
    return value


class UserKeyHandlers:
    """Handlers taking ``(origin, request)`` after X-Matrix authentication."""

    def __init__(self, server_name: str, stores: Stores, keys: E2eKeyService) -> None:
        self._server_name = server_name
        self._stores = stores
        self._keys = keys

    async def on_query_keys(self, origin: str, request: web.Request) -> web.Response:
        """POST /_matrix/federation/v1/user/keys/query (s2s: queryUserEncryptionKeys)."""
        body = await json_object(request)
        wanted = _local_user_map(body, "device_keys", self._server_name)
        for user_id, devices in wanted.items():
            if not isinstance(devices, list) or not all(isinstance(d, str) for d in devices):
                raise BadJson(f"device_keys.{user_id} must be an array of device IDs")
        result = await self._keys.query_local_keys(wanted, None)
        return web.json_response(result, dumps=compact_dumps)

    async def on_claim_keys(self, origin: str, request: web.Request) -> web.Response:
        """POST /_matrix/federation/v1/user/keys/claim (s2s: claimUserEncryptionKeys)."""
        body = await json_object(request)
        wanted = _local_user_map(body, "one_time_keys", self._server_name)
        for user_id, devices in wanted.items():
            if not isinstance(devices, dict) or not all(
                isinstance(a, str) for a in devices.values()
            ):
                raise BadJson(f"one_time_keys.{user_id} must map device IDs to algorithms")
        claimed = await self._keys.claim_local_keys(wanted)
        return web.json_response({"one_time_keys": claimed}, dumps=compact_dumps)

    async def on_get_devices(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/user/devices/{userId} (s2s: getUserDevices)."""
        user_id = request.match_info["userId"]
        if not is_valid_user_id(user_id):
            raise InvalidParam(f"Invalid user ID: {user_id}")
        if server_name_of(user_id) != self._server_name:
            raise InvalidParam("User is not hosted on this homeserver")
        if await self._stores.accounts.get_user(user_id) is None:
            raise NotFound("Unknown user")
        return web.json_response(await self._keys.user_devices(user_id), dumps=compact_dumps)


class RemoteKeyClient:
    """Asks other servers for their users' keys (hooks of the e2ee services)."""

    def __init__(self, client: FederationRequester, remote: RemoteDeviceLists) -> None:
        self._client = client
        self._remote = remote

    async def user_devices(self, user_id: str, timeout_s: float) -> Any:
        """GET /user/devices/{userId} on the user's server (the resync fetcher)."""
        path = f"{FEDERATION_V1}/user/devices/{quote(user_id, safe='')}"
        return await self._client.get_json(
            server_name_of(user_id), path, timeout_s=max(timeout_s, MIN_TIMEOUT_S)
        )

    async def query(
        self, server: str, wanted: dict[str, list[str]], timeout_ms: int
    ) -> dict[str, Any]:
        """The ``remote_key_query`` hook: ``/keys/query`` sections for ``server``'s users."""
        timeout_s = max(timeout_ms / 1000, MIN_TIMEOUT_S)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        out: dict[str, Any] = {"device_keys": {}, "master_keys": {}, "self_signing_keys": {}}
        users = list(wanted)
        cached = await asyncio.gather(
            *(self._remote.cached(u, wanted[u], timeout_s) for u in users)
        )
        timeout_s = max(deadline - loop.time(), MIN_TIMEOUT_S)
        ask: dict[str, list[str]] = {}
        for user_id, keys in zip(users, cached, strict=True):
            if keys is None:
                ask[user_id] = wanted[user_id]
            else:
                _add_cached(out, user_id, keys)
        if ask:
            try:
                answer = await self._client.post_json(
                    server,
                    f"{FEDERATION_V1}/user/keys/query",
                    {"device_keys": ask},
                    timeout_s=timeout_s,
                )
            except FederationDenied as exc:  # the failure's status: 403, as Synapse
                raise exc.to_matrix_error() from None
            _add_answer(out, ask, answer)
        return out

    async def claim(
        self, server: str, wanted: dict[str, dict[str, str]], timeout_ms: int
    ) -> dict[str, Any]:
        """The ``remote_key_claim`` hook: one ``/user/keys/claim`` to ``server``."""
        try:
            answer = await self._client.post_json(
                server,
                f"{FEDERATION_V1}/user/keys/claim",
                {"one_time_keys": wanted},
                timeout_s=max(timeout_ms / 1000, MIN_TIMEOUT_S),
            )
        except FederationDenied as exc:
            raise exc.to_matrix_error() from None
        claimed = answer.get("one_time_keys") if isinstance(answer, dict) else None
        out: dict[str, dict[str, Any]] = {}
        if isinstance(claimed, dict):
            for user_id, devices in wanted.items():
                got = claimed.get(user_id)
                if not isinstance(got, dict):
                    continue
                kept = {d: k for d, k in got.items() if d in devices and isinstance(k, dict)}
                if kept:
                    out[user_id] = kept
        return {"one_time_keys": out}

    async def master_key(self, user_id: str) -> dict[str, Any] | None:
        """The ``remote_master_key`` hook (signing another user's master key)."""
        try:
            server = server_name_of(user_id)
            answer = await self.query(server, {user_id: []}, 10_000)
        except Exception:
            return None
        key = answer["master_keys"].get(user_id)
        return key if isinstance(key, dict) else None


def _add_cached(out: dict[str, Any], user_id: str, keys: CachedKeys) -> None:
    out["device_keys"][user_id] = keys.device_keys
    if keys.master_key is not None:
        out["master_keys"][user_id] = keys.master_key
    if keys.self_signing_key is not None:
        out["self_signing_keys"][user_id] = keys.self_signing_key


def _add_answer(out: dict[str, Any], asked: dict[str, list[str]], answer: Any) -> None:
    """Keep the parts of a ``/user/keys/query`` answer about the users asked: device
    keys naming their user and device, cross-signing keys of their user."""
    if not isinstance(answer, dict):
        return
    device_keys = answer.get("device_keys")
    if isinstance(device_keys, dict):
        for user_id, wanted in asked.items():
            devices = device_keys.get(user_id)
            if not isinstance(devices, dict):
                continue
            out["device_keys"][user_id] = {
                d: k
                for d, k in devices.items()
                if isinstance(k, dict)
                and k.get("user_id") == user_id
                and k.get("device_id") == d
                and (not wanted or d in wanted)
            }
    for section, field in (
        ("master_keys", "master_key"),
        ("self_signing_keys", "self_signing_key"),
    ):
        by_user = answer.get(section)
        if not isinstance(by_user, dict):
            continue
        for user_id in asked:
            key = by_user.get(user_id)
            master = out["master_keys"].get(user_id)
            checked = checked_cross_signing_keys({field: key}, user_id, master)
            if checked:
                out[section][user_id] = next(iter(checked.values()))


def user_key_routes(auth: FederationAuthenticator, handlers: UserKeyHandlers) -> list[Route]:
    """The federation routes of the e2ee key endpoints (all X-Matrix authenticated)."""
    a = auth.authenticated
    return [
        ("POST", f"{FEDERATION_V1}/user/keys/query", a(handlers.on_query_keys)),
        ("POST", f"{FEDERATION_V1}/user/keys/claim", a(handlers.on_claim_keys)),
        ("GET", f"{FEDERATION_V1}/user/devices/{{userId}}", a(handlers.on_get_devices)),
    ]

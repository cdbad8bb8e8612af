"""User admin endpoints in Synapse's shape (``docs/admin_api/user_admin_api.md``).

- ``GET /_synapse/admin/v2/users`` (and ``v3``): the listing, filtered, ordered, paged;
- ``GET/PUT /_synapse/admin/v2/users/{userId}``: query, create (201) or modify (200);
- ``POST /_synapse/admin/v1/deactivate/{userId}`` (``erase``),
  ``POST /_synapse/admin/v1/reset_password/{userId}``;
- ``GET /_synapse/admin/v1/whois/{userId}`` and the client API's
  ``GET /_matrix/client/v3/admin/whois/{userId}`` (a user may whois themselves);
- devices: ``/_synapse/admin/v2/users/{userId}/devices[/{deviceId}]``, ``delete_devices``;
- ``/_synapse/admin/v1/users/{userId}/``: ``joined_rooms``, ``memberships``, ``media``,
  ``login``, ``shadow_ban``, ``override_ratelimit``, ``accountdata``, ``pushers``,
  ``admin``; ``GET /_synapse/admin/v1/username_available``;
  ``PUT /_synapse/admin/v1/suspend/{userId}``; the user of an SSO identity
  (``auth_providers/{provider}/users/{externalId}``) or of a third-party ID
  (``threepid/{medium}/users/{address}``).

Server admins only (``require_admin``), but for whois of oneself.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.admin.user_shapes import (
    account_changes,
    device_json,
    media_json,
    pusher_json,
    user_row_json,
)
from client_api.context import ClientContext
from client_api.routes import CLIENT_PREFIXES, Route
from client_api.versions import json_response
from homeserver.admin.users import (
    USER_ORDER_NAMES,
    UserAdmin,
    UserFilter,
)
from homeserver.errors import BadJson, InvalidParam, MatrixError, MissingParam
from homeserver.http.body import (
    get_bool,
    get_list,
    get_str,
    json_object,
    query_bool,
    query_int,
)

DEFAULT_LIMIT = 100

# order_by of a user's media -> column of the media table (Synapse's names)
MEDIA_ORDERS = {
    "media_id": "media_id",
    "upload_name": "upload_name",
    "created_ts": "created_ts",
    "last_access_ts": "last_access_ts",
    "media_length": "size",
    "media_type": "content_type",
    "quarantined_by": "quarantined",
    # nothing is kept safe from quarantine here: every media ties, by media ID
    "safe_from_quarantine": "media_id",
}


def _one_of(request: web.Request, key: str, default: str, allowed: Any) -> str:
    value = request.query.get(key, default)
    if value not in allowed:
        raise InvalidParam(f"Query parameter {key!r} must be one of [{', '.join(allowed)}]")
    return value


def _backwards(request: web.Request) -> bool:
    return _one_of(request, "dir", "f", ("f", "b")) == "b"


def _optional_bool(request: web.Request, key: str) -> bool | None:
    return query_bool(request, key, False) if key in request.query else None


class UserAdminHandlers:
    def __init__(self, ctx: ClientContext, users: UserAdmin) -> None:
        self._ctx = ctx
        self._users = users

    # -- listing, query, create or modify -------------------------------------------

    async def list_users_v2(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/users: ``deactivated=true`` includes deactivated users."""
        return await self._list_users(request, v3=False)

    async def list_users_v3(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v3/users: ``deactivated`` true/false selects; absent, all."""
        return await self._list_users(request, v3=True)

    async def _list_users(self, request: web.Request, *, v3: bool) -> web.Response:
        await require_admin(self._ctx, request)
        start = query_int(request, "from", 0, minimum=0)
        limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=0)
        if v3:
            deactivated = _optional_bool(request, "deactivated")
        else:
            deactivated = None if query_bool(request, "deactivated", False) else False
        where = UserFilter(
            user_id=request.query.get("user_id") or None,
            name=request.query.get("name") or None,
            guests=query_bool(request, "guests", True),
            deactivated=deactivated,
            admins=_optional_bool(request, "admins"),
            locked=query_bool(request, "locked", False),
            not_user_types=tuple(request.query.getall("not_user_type", [])),
        )
        order_by = _one_of(request, "order_by", "name", USER_ORDER_NAMES)
        rows, total = await self._users.list_users(
            where, order_by, _backwards(request), limit, start
        )
        body: dict[str, Any] = {"users": [user_row_json(r) for r in rows], "total": total}
        if start + limit < total:
            body["next_token"] = str(start + len(rows))
        return json_response(body)

    async def get_user(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/users/{userId}."""
        await require_admin(self._ctx, request)
        return json_response(await self._users.user_json(request.match_info["userId"]))

    async def put_user(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v2/users/{userId}: 201 when created, 200 when modified."""
        requester = await require_admin(self._ctx, request)
        user_id = request.match_info["userId"]
        body = await json_object(request, allow_empty=True)
        changes = account_changes(body)
        created = await self._users.create_or_modify(requester.user_id, user_id, changes)
        return json_response(await self._users.user_json(user_id), status=201 if created else 200)

    # -- deactivation, password, whois -------------------------------------------------

    async def deactivate(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/deactivate/{userId} (``erase``)."""
        await require_admin(self._ctx, request)
        body = await json_object(request, allow_empty=True)
        erase = body.get("erase", False)
        if not isinstance(erase, bool):
            raise BadJson("Param 'erase' must be a boolean, if given")
        await self._users.deactivate(request.match_info["userId"], erase=erase)
        # no third-party ID is bound at an identity server by this server
        return json_response({"id_server_unbind_result": "success"})

    async def reset_password(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/reset_password/{userId}."""
        await require_admin(self._ctx, request)
        body = await json_object(request)
        new_password = self._ctx.accounts.check_password_shape(get_str(body, "new_password"))
        logout_devices = get_bool(body, "logout_devices", True)
        await self._users.reset_password(request.match_info["userId"], new_password, logout_devices)
        return json_response({})

    async def whois(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/whois/{userId}, GET /_matrix/client/v3/admin/whois/{userId}:
        an admin about anyone, a user about themselves."""
        user_id = request.match_info["userId"]
        requester = await self._ctx.requester(request)
        if requester.user_id != user_id:
            await require_admin(self._ctx, request)
        return json_response(await self._users.whois(user_id))

    # -- devices ---------------------------------------------------------------------------

    async def list_devices(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/users/{userId}/devices."""
        await require_admin(self._ctx, request)
        devices = await self._users.devices(request.match_info["userId"])
        return json_response({"devices": [device_json(d) for d in devices], "total": len(devices)})

    async def create_device(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v2/users/{userId}/devices: nothing if it exists."""
        await require_admin(self._ctx, request)
        body = await json_object(request)
        await self._users.create_device(request.match_info["userId"], get_str(body, "device_id"))
        return json_response({})

    async def get_device(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v2/users/{userId}/devices/{deviceId}."""
        await require_admin(self._ctx, request)
        device = await self._users.device(
            request.match_info["userId"], request.match_info["deviceId"]
        )
        body = device_json(device)
        body.pop("dehydrated")
        return json_response(body)

    async def update_device(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v2/users/{userId}/devices/{deviceId} (``display_name``)."""
        await require_admin(self._ctx, request)
        body = await json_object(request, allow_empty=True)
        await self._users.rename_device(
            request.match_info["userId"],
            request.match_info["deviceId"],
            get_str(body, "display_name", None),
        )
        return json_response({})

    async def delete_device(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v2/users/{userId}/devices/{deviceId}."""
        await require_admin(self._ctx, request)
        await self._users.delete_devices(
            request.match_info["userId"], [request.match_info["deviceId"]]
        )
        return json_response({})

    async def delete_devices(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v2/users/{userId}/delete_devices (``devices``)."""
        await require_admin(self._ctx, request)
        body = await json_object(request)
        devices = get_list(body, "devices")
        if not all(isinstance(d, str) for d in devices):
            raise BadJson("'devices' must be an array of strings")
        await self._users.delete_devices(request.match_info["userId"], list(devices))
        return json_response({})

    # -- rooms, media, login, account data, pushers ----------------------------------------

    async def joined_rooms(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/joined_rooms."""
        await require_admin(self._ctx, request)
        rooms = await self._users.joined_rooms(request.match_info["userId"])
        return json_response({"joined_rooms": rooms, "total": len(rooms)})

    async def memberships(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/memberships."""
        await require_admin(self._ctx, request)
        found = await self._users.memberships(request.match_info["userId"])
        return json_response({"memberships": found})

    async def user_of_external_id(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/auth_providers/{provider}/users/{externalId}."""
        await require_admin(self._ctx, request)
        user_id = await self._users.user_of_external_id(
            request.match_info["provider"], request.match_info["externalId"]
        )
        return json_response({"user_id": user_id})

    async def user_of_threepid(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/threepid/{medium}/users/{address}."""
        await require_admin(self._ctx, request)
        user_id = await self._users.user_of_threepid(
            request.match_info["medium"], request.match_info["address"]
        )
        return json_response({"user_id": user_id})

    def _media_page(self, request: web.Request) -> tuple[str, bool, int, int]:
        start = query_int(request, "from", 0, minimum=0)
        limit = query_int(request, "limit", DEFAULT_LIMIT, minimum=0)
        if "order_by" not in request.query and "dir" not in request.query:
            return "created_ts", True, limit, start  # newest first
        order_by = _one_of(request, "order_by", "created_ts", MEDIA_ORDERS)
        return MEDIA_ORDERS[order_by], _backwards(request), limit, start

    async def list_media(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/media."""
        await require_admin(self._ctx, request)
        column, backwards, limit, start = self._media_page(request)
        records, total = await self._users.media(
            request.match_info["userId"], column, backwards, limit, start
        )
        body: dict[str, Any] = {"media": [media_json(r) for r in records], "total": total}
        if start + limit < total:
            body["next_token"] = start + len(records)
        return json_response(body)

    async def delete_media(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/users/{userId}/media: a page of it, rows and files."""
        await require_admin(self._ctx, request)
        column, backwards, limit, start = self._media_page(request)
        deleted = await self._users.delete_media(
            request.match_info["userId"], column, backwards, limit, start
        )
        return json_response({"deleted_media": deleted, "total": len(deleted)})

    async def login_as(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/users/{userId}/login (``valid_until_ms``)."""
        requester = await require_admin(self._ctx, request)
        body = await json_object(request, allow_empty=True)
        valid_until_ms = body.get("valid_until_ms")
        if valid_until_ms is not None and (
            not isinstance(valid_until_ms, int) or isinstance(valid_until_ms, bool)
        ):
            raise MatrixError(400, "M_UNKNOWN", "'valid_until_ms' parameter must be an int")
        token = await self._users.login_as(
            requester.user_id, request.match_info["userId"], valid_until_ms
        )
        return json_response({"access_token": token})

    async def account_data(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/accountdata."""
        await require_admin(self._ctx, request)
        data = await self._users.account_data(request.match_info["userId"])
        return json_response({"account_data": data})

    async def pushers(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/pushers."""
        await require_admin(self._ctx, request)
        found = await self._users.pushers(request.match_info["userId"])
        return json_response({"pushers": [pusher_json(p) for p in found], "total": len(found)})

    # -- flags -------------------------------------------------------------------------------

    async def get_admin(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/admin."""
        await require_admin(self._ctx, request)
        user_id = request.match_info["userId"]
        row = await self._users.existing(
            user_id, "Only local users can be admins of this homeserver"
        )
        return json_response({"admin": row.is_admin})

    async def put_admin(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/users/{userId}/admin (``admin``)."""
        requester = await require_admin(self._ctx, request)
        body = await json_object(request)
        admin = get_bool(body, "admin")
        await self._users.set_admin(requester.user_id, request.match_info["userId"], admin)
        return json_response({})

    async def shadow_ban(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/users/{userId}/shadow_ban."""
        await require_admin(self._ctx, request)
        await self._users.set_shadow_banned(request.match_info["userId"], True)
        return json_response({})

    async def unshadow_ban(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/users/{userId}/shadow_ban."""
        await require_admin(self._ctx, request)
        await self._users.set_shadow_banned(request.match_info["userId"], False)
        return json_response({})

    async def suspend(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/suspend/{userId} (``suspend``)."""
        await require_admin(self._ctx, request)
        user_id = request.match_info["userId"]
        body = await json_object(request)
        suspend = get_bool(body, "suspend")
        await self._users.set_suspended(user_id, suspend)
        return json_response({f"user_{user_id}_suspended": suspend})

    async def get_ratelimit(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/users/{userId}/override_ratelimit: {} when none is set."""
        await require_admin(self._ctx, request)
        override = await self._users.ratelimit_override(request.match_info["userId"])
        if override is None:
            return json_response({})
        return json_response({"messages_per_second": override[0], "burst_count": override[1]})

    async def set_ratelimit(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/users/{userId}/override_ratelimit (0 and 0: no limit)."""
        await require_admin(self._ctx, request)
        body = await json_object(request, allow_empty=True)
        values = []
        for key in ("messages_per_second", "burst_count"):
            value = body.get(key, 0)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise InvalidParam(f"{key!r} parameter must be a positive int")
            values.append(value)
        await self._users.set_ratelimit_override(request.match_info["userId"], *values)
        return json_response({"messages_per_second": values[0], "burst_count": values[1]})

    async def delete_ratelimit(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/users/{userId}/override_ratelimit."""
        await require_admin(self._ctx, request)
        await self._users.delete_ratelimit_override(request.match_info["userId"])
        return json_response({})

    async def username_available(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/username_available?username= (open registration or not)."""
        await require_admin(self._ctx, request)
        username = request.query.get("username")
        if username is None:
            raise MissingParam("Missing string query parameter 'username'")
        return json_response({"available": await self._users.username_available(username)})


def user_admin_routes(ctx: ClientContext, users: UserAdmin) -> list[Route]:
    h = UserAdminHandlers(ctx, users)
    v1 = "/_synapse/admin/v1"
    v2 = "/_synapse/admin/v2"
    user = f"{v1}/users/{{userId}}"
    routes: list[Route] = [
        ("GET", f"{v2}/users", h.list_users_v2),
        ("GET", "/_synapse/admin/v3/users", h.list_users_v3),
        ("GET", f"{v2}/users/{{userId}}", h.get_user),
        ("PUT", f"{v2}/users/{{userId}}", h.put_user),
        ("POST", f"{v1}/deactivate/{{userId}}", h.deactivate),
        ("POST", f"{v1}/reset_password/{{userId}}", h.reset_password),
        ("PUT", f"{v1}/suspend/{{userId}}", h.suspend),
        ("GET", f"{v1}/whois/{{userId}}", h.whois),
        ("GET", f"{v2}/users/{{userId}}/devices", h.list_devices),
        ("POST", f"{v2}/users/{{userId}}/devices", h.create_device),
        ("GET", f"{v2}/users/{{userId}}/devices/{{deviceId}}", h.get_device),
        ("PUT", f"{v2}/users/{{userId}}/devices/{{deviceId}}", h.update_device),
        ("DELETE", f"{v2}/users/{{userId}}/devices/{{deviceId}}", h.delete_device),
        ("POST", f"{v2}/users/{{userId}}/delete_devices", h.delete_devices),
        ("GET", f"{user}/joined_rooms", h.joined_rooms),
        ("GET", f"{user}/memberships", h.memberships),
        ("GET", f"{v1}/auth_providers/{{provider}}/users/{{externalId}}", h.user_of_external_id),
        ("GET", f"{v1}/threepid/{{medium}}/users/{{address}}", h.user_of_threepid),
        ("GET", f"{user}/media", h.list_media),
        ("DELETE", f"{user}/media", h.delete_media),
        ("POST", f"{user}/login", h.login_as),
        ("GET", f"{user}/accountdata", h.account_data),
        ("GET", f"{user}/pushers", h.pushers),
        ("GET", f"{user}/admin", h.get_admin),
        ("PUT", f"{user}/admin", h.put_admin),
        ("POST", f"{user}/shadow_ban", h.shadow_ban),
        ("DELETE", f"{user}/shadow_ban", h.unshadow_ban),
        ("GET", f"{user}/override_ratelimit", h.get_ratelimit),
        ("POST", f"{user}/override_ratelimit", h.set_ratelimit),
        ("DELETE", f"{user}/override_ratelimit", h.delete_ratelimit),
        ("GET", f"{v1}/username_available", h.username_available),
    ]
    for prefix in CLIENT_PREFIXES:
        routes.append(("GET", f"{prefix}/admin/whois/{{userId}}", h.whois))
    return routes

"""Registration admin endpoints in Synapse's shape.

- ``/_synapse/admin/v1/register``: shared-secret registration (HMAC-SHA1 over
  nonce, user, password, admin flag), as Synapse's ``register_new_matrix_user`` uses.
- ``/_synapse/admin/v1/registration_tokens``: create, list, read, update, delete
  registration tokens (admins only).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.context import ClientContext
from client_api.register import session_body
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.accounts import DEFAULT_TOKEN_LENGTH
from homeserver.errors import Forbidden, MatrixError
from homeserver.http.body import get_bool, get_int, get_str, json_object
from storage.registration_tokens import RegistrationToken

NONCE_LIFETIME_MS = 60_000


def registration_mac(secret: str, nonce: str, user: str, password: str, admin: bool) -> str:
    """The HMAC that shared-secret registration expects (Synapse's format)."""
    mac = hmac.new(secret.encode("utf-8"), digestmod=hashlib.sha1)
    mac.update(nonce.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(user.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(password.encode("utf-8"))
    mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


def token_json(token: RegistrationToken) -> dict[str, Any]:
    return {
        "token": token.token,
        "uses_allowed": token.uses_allowed,
        "pending": token.pending,
        "completed": token.completed,
        "expiry_time": token.expiry_time,
    }


class RegistrationAdminHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        self._nonces: dict[str, int] = {}

    # -- shared-secret registration ------------------------------------------------

    async def get_register_nonce(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/register."""
        if not self._ctx.config.registration_shared_secret:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        now = self._ctx.clock.time_ms()
        self._nonces = {n: ts for n, ts in self._nonces.items() if now - ts < NONCE_LIFETIME_MS}
        nonce = secrets.token_hex(32)
        self._nonces[nonce] = now
        return json_response({"nonce": nonce})

    async def register_with_shared_secret(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/register."""
        secret = self._ctx.config.registration_shared_secret
        if not secret:
            raise MatrixError(400, "M_UNKNOWN", "Shared secret registration is not enabled")
        body = await json_object(request)
        nonce = get_str(body, "nonce")
        username = get_str(body, "username")
        password = get_str(body, "password")
        admin = get_bool(body, "admin", False)
        mac = get_str(body, "mac")
        displayname = get_str(body, "displayname", None)
        issued = self._nonces.pop(nonce, None)
        if issued is None or self._ctx.clock.time_ms() - issued >= NONCE_LIFETIME_MS:
            raise MatrixError(400, "M_UNKNOWN", "unrecognised nonce")
        expected = registration_mac(secret, nonce, username, password, admin)
        if not hmac.compare_digest(expected, mac):
            raise Forbidden("HMAC incorrect")
        self._ctx.accounts.check_password_shape(password)
        user_id, session = await self._ctx.accounts.register(
            username.lower(), password, admin=admin, displayname=displayname
        )
        response = session_body(user_id, session)
        response["home_server"] = self._ctx.server_name
        return json_response(response)

    # -- registration tokens ------------------------------------------------------

    async def _require_admin(self, request: web.Request) -> None:
        await require_admin(self._ctx, request)

    async def list_registration_tokens(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/registration_tokens."""
        await self._require_admin(request)
        valid = request.query.get("valid")
        tokens = await self._ctx.accounts.registration_tokens(
            valid=None if valid is None else valid == "true"
        )
        return json_response({"registration_tokens": [token_json(t) for t in tokens]})

    async def create_registration_token(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/registration_tokens/new."""
        await self._require_admin(request)
        body = await json_object(request, allow_empty=True)
        created = await self._ctx.accounts.create_registration_token(
            get_str(body, "token", None),
            length=get_int(body, "length", DEFAULT_TOKEN_LENGTH),
            uses_allowed=get_int(body, "uses_allowed", None),
            expiry_time=get_int(body, "expiry_time", None),
        )
        return json_response(token_json(created))

    async def get_registration_token(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/registration_tokens/{token}."""
        await self._require_admin(request)
        token = await self._ctx.accounts.registration_token(request.match_info["token"])
        return json_response(token_json(token))

    async def update_registration_token(self, request: web.Request) -> web.Response:
        """PUT /_synapse/admin/v1/registration_tokens/{token}."""
        await self._require_admin(request)
        name = request.match_info["token"]
        body = await json_object(request, allow_empty=True)
        current = await self._ctx.accounts.registration_token(name)
        # An absent key keeps the current value; null removes the limit.
        uses_allowed = get_int(body, "uses_allowed", None)
        if "uses_allowed" not in body:
            uses_allowed = current.uses_allowed
        expiry_time = get_int(body, "expiry_time", None)
        if "expiry_time" not in body:
            expiry_time = current.expiry_time
        updated = await self._ctx.accounts.update_registration_token(
            name, uses_allowed, expiry_time
        )
        return json_response(token_json(updated))

    async def delete_registration_token(self, request: web.Request) -> web.Response:
        """DELETE /_synapse/admin/v1/registration_tokens/{token}."""
        await self._require_admin(request)
        await self._ctx.accounts.delete_registration_token(request.match_info["token"])
        return json_response({})


def registration_admin_routes(ctx: ClientContext) -> list[Route]:
    handlers = RegistrationAdminHandlers(ctx)
    base = "/_synapse/admin/v1"
    tokens = f"{base}/registration_tokens"
    return [
        ("GET", f"{base}/register", handlers.get_register_nonce),
        ("POST", f"{base}/register", handlers.register_with_shared_secret),
        ("GET", tokens, handlers.list_registration_tokens),
        ("POST", f"{tokens}/new", handlers.create_registration_token),
        ("GET", f"{tokens}/{{token}}", handlers.get_registration_token),
        ("PUT", f"{tokens}/{{token}}", handlers.update_registration_token),
        ("DELETE", f"{tokens}/{{token}}", handlers.delete_registration_token),
    ]

"""Server-wide admin endpoints in Synapse's shape.

- ``GET /_synapse/admin/v1/server_version``: like Synapse, open without a token (admin
  tools read it before logging in).
- ``GET /_synapse/admin/v1/background_updates/status``, ``GET`` and ``POST
  /_synapse/admin/v1/background_updates/enabled`` (admins only): see
  ``homeserver/admin/background_updates.py`` for what there is to report.
"""

from __future__ import annotations

from importlib import metadata

from aiohttp import web

from client_api.admin.auth import require_admin
from client_api.context import ClientContext
from client_api.routes import Route
from client_api.versions import json_response
from homeserver.admin.background_updates import BackgroundUpdates
from homeserver.http.body import get_bool, json_object


def server_version() -> str:
    """This server's version, from its installed package metadata."""
    try:
        return metadata.version("homeserver")
    except metadata.PackageNotFoundError:
        return "0.0.0"


class ServerAdminHandlers:
    def __init__(self, ctx: ClientContext, updates: BackgroundUpdates) -> None:
        self._ctx = ctx
        self._updates = updates

    async def get_server_version(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/server_version."""
        return json_response({"server_version": server_version()})

    async def background_update_status(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/background_updates/status."""
        await require_admin(self._ctx, request)
        return json_response(self._updates.status())

    async def get_background_updates_enabled(self, request: web.Request) -> web.Response:
        """GET /_synapse/admin/v1/background_updates/enabled."""
        await require_admin(self._ctx, request)
        return json_response({"enabled": self._updates.enabled})

    async def set_background_updates_enabled(self, request: web.Request) -> web.Response:
        """POST /_synapse/admin/v1/background_updates/enabled {"enabled": bool}."""
        await require_admin(self._ctx, request)
        body = await json_object(request, allow_empty=True)
        self._updates.enabled = get_bool(body, "enabled", True)
        return json_response({"enabled": self._updates.enabled})


def server_admin_routes(ctx: ClientContext, updates: BackgroundUpdates) -> list[Route]:
    handlers = ServerAdminHandlers(ctx, updates)
    base = "/_synapse/admin/v1"
    return [
        ("GET", f"{base}/server_version", handlers.get_server_version),
        ("GET", f"{base}/background_updates/status", handlers.background_update_status),
        ("GET", f"{base}/background_updates/enabled", handlers.get_background_updates_enabled),
        ("POST", f"{base}/background_updates/enabled", handlers.set_background_updates_enabled),
    ]

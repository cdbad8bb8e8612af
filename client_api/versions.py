"""Server discovery and feature negotiation: versions, .well-known, capabilities."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.context import ClientContext
from homeserver.errors import NotFound
from homeserver.events.json_codec import dumps_bytes

# Spec versions whose client-server API this server implements.
SUPPORTED_VERSIONS = [f"v1.{minor}" for minor in range(1, 13)]

# Unstable features this server offers. Element X (matrix-rust-sdk) and Element Web
# (matrix-js-sdk) decide on native simplified sliding sync (MSC4186) from this flag
# alone, with or without an access token, as Synapse advertises it; they read nothing
# about sliding sync from .well-known (the old `org.matrix.msc3575.proxy` key pointed
# at the retired proxy, and Synapse does not serve it).
UNSTABLE_FEATURES = {"org.matrix.simplified_msc3575": True}


def json_response(body: object, status: int = 200) -> web.Response:
    """A JSON response from the fast encoder (compact, UTF-8, no charset parameter)."""
    return web.Response(body=dumps_bytes(body), status=status, content_type="application/json")


class DiscoveryHandlers:
    def __init__(
        self, ctx: ClientContext, room_versions: dict[str, str], default_room_version: str
    ) -> None:
        self._ctx = ctx
        self._room_versions = room_versions
        self._default_room_version = default_room_version

    async def get_versions(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/versions (client-server API: Support)."""
        return json_response(
            {
                "versions": SUPPORTED_VERSIONS,
                "unstable_features": {
                    **UNSTABLE_FEATURES,
                    "org.matrix.msc4140": self._ctx.delayed_events.enabled,
                },
            }
        )

    async def get_wellknown_client(self, request: web.Request) -> web.Response:
        """GET /.well-known/matrix/client (client-server API: Server discovery)."""
        base = self._ctx.config.client_base_url or self._ctx.config.public_baseurl
        if base is None:
            base = f"https://{self._ctx.server_name}/"
        return json_response({"m.homeserver": {"base_url": base}})

    async def get_wellknown_server(self, request: web.Request) -> web.Response:
        """GET /.well-known/matrix/server (server-server API: Server discovery)."""
        if not self._ctx.config.serve_server_wellknown:
            raise web.HTTPNotFound()
        host = self._ctx.server_name
        if ":" not in host.rsplit("]", 1)[-1]:
            host = f"{host}:443"
        return json_response({"m.server": host})

    async def get_wellknown_support(self, request: web.Request) -> web.Response:
        """GET /.well-known/matrix/support (client-server API: Server discovery), from
        ``admin_contact``; 404 when it is not set."""
        document = support_document(self._ctx.config.admin_contact)
        if document is None:
            raise NotFound("No support information is configured")
        return json_response(document)

    async def get_capabilities(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/capabilities."""
        requester = await self._ctx.requester(request)
        capabilities: dict[str, Any] = {
            "m.change_password": {"enabled": True},
            "m.room_versions": {
                "default": self._default_room_version,
                "available": self._room_versions,
            },
            "m.set_displayname": {"enabled": True},
            "m.set_avatar_url": {"enabled": True},
            "m.3pid_changes": {"enabled": False},
            "m.get_login_token": {"enabled": self._ctx.config.login_via_existing_session.enabled},
            "m.profile_fields": {"enabled": True},
        }
        if await self._ctx.accounts.is_admin(requester.user_id):
            # server admins suspend and lock accounts (spec v1.18); omitted for others
            capabilities["m.account_moderation"] = {"suspend": True, "lock": True}
        return json_response({"capabilities": capabilities})


def support_document(admin_contact: str | None) -> dict[str, Any] | None:
    """The support document for Synapse's ``admin_contact``: a ``mailto:`` or bare
    address is the admin's email, a user ID their Matrix ID, an http(s) URL the
    support page."""
    if not admin_contact:
        return None
    if admin_contact.startswith(("https://", "http://")):
        return {"support_page": admin_contact}
    contact: dict[str, str] = {"role": "m.role.admin"}
    if admin_contact.startswith("@"):
        contact["matrix_id"] = admin_contact
    else:
        contact["email_address"] = admin_contact.removeprefix("mailto:")
    return {"contacts": [contact]}

"""Every admin API route, gathered from the modules of this package."""

from __future__ import annotations

from client_api.admin.federation import federation_admin_routes
from client_api.admin.media import media_admin_routes
from client_api.admin.registration import registration_admin_routes
from client_api.admin.users import user_admin_routes
from client_api.context import ClientContext
from client_api.routes import Route
from homeserver.admin import AdminServices


def admin_routes(ctx: ClientContext, admin: AdminServices) -> list[Route]:
    return [
        *registration_admin_routes(ctx),
        *media_admin_routes(ctx, admin.media),
        *federation_admin_routes(ctx, admin.destinations),
        *user_admin_routes(ctx, admin.users),
    ]

"""Every admin API route, gathered from the modules of this package."""

from __future__ import annotations

from client_api.admin.account_moderation import account_moderation_routes
from client_api.admin.federation import federation_admin_routes
from client_api.admin.media import media_admin_routes
from client_api.admin.registration import registration_admin_routes
from client_api.admin.reports import report_admin_routes
from client_api.admin.room_deletion import room_deletion_routes
from client_api.admin.rooms import room_admin_routes
from client_api.admin.server import server_admin_routes
from client_api.admin.server_notices import server_notice_admin_routes
from client_api.admin.users import user_admin_routes
from client_api.context import ClientContext
from client_api.routes import Route
from homeserver.admin import AdminServices


def admin_routes(ctx: ClientContext, admin: AdminServices) -> list[Route]:
    return [
        *registration_admin_routes(ctx),
        *media_admin_routes(ctx, admin.media, admin.media_admin),
        *report_admin_routes(ctx, admin.reports),
        *server_notice_admin_routes(ctx, admin.server_notices),
        *server_admin_routes(ctx, admin.background_updates),
        *federation_admin_routes(ctx, admin.destinations),
        *room_admin_routes(ctx, admin.rooms),
        *room_deletion_routes(ctx, admin.room_deletion, admin.history_purges),
        *user_admin_routes(ctx, admin.users),
        *account_moderation_routes(ctx, admin.users),
    ]

"""Services behind Synapse's admin API (``/_synapse/admin/...``).

Each module holds the admin operations of one concern; ``AdminServices`` is what
``server.py`` builds once and hands to the admin handlers in ``client_api/admin/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.admin.background_updates import BackgroundUpdates
from homeserver.admin.destinations import DestinationAdmin
from homeserver.admin.media import MediaAdmin
from homeserver.admin.purge import HistoryPurges
from homeserver.admin.room_deletion import RoomDeletion
from homeserver.admin.rooms import RoomAdmin
from homeserver.admin.users import UserAdmin
from homeserver.media.service import MediaService
from homeserver.reports import ReportService
from homeserver.server_notices import ServerNotices


@dataclass(frozen=True)
class AdminServices:
    media: MediaService
    destinations: DestinationAdmin
    media_admin: MediaAdmin
    reports: ReportService
    server_notices: ServerNotices
    background_updates: BackgroundUpdates
    rooms: RoomAdmin
    room_deletion: RoomDeletion
    history_purges: HistoryPurges
    users: UserAdmin

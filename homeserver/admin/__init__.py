"""Services behind Synapse's admin API (``/_synapse/admin/...``).

Each module holds the admin operations of one concern; ``AdminServices`` is what
``server.py`` builds once and hands to the admin handlers in ``client_api/admin/``.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeserver.admin.destinations import DestinationAdmin
from homeserver.admin.users import UserAdmin
from homeserver.media.service import MediaService


@dataclass(frozen=True)
class AdminServices:
    media: MediaService
    destinations: DestinationAdmin
    users: UserAdmin

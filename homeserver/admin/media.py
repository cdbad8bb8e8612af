"""Media as the admin API sees it: what is stored of one media
(``GET /_synapse/admin/v1/media/{serverName}/{mediaId}``), and the media of a room,
the mxc:// URIs its events refer to, listed (``GET /_synapse/admin/v1/room/{roomId}/media``)
and quarantined in bulk (``POST /_synapse/admin/v1/room/{roomId}/media/quarantine``).

As in Synapse, a room's media is what the ``url`` and ``info.thumbnail_url`` of its
unredacted events name; media sent in encrypted events cannot be seen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from homeserver.errors import NotFound
from homeserver.media.service import MediaService
from storage.events import EventStore
from storage.rooms import RoomStore

_MXC = re.compile(r"^mxc://([^/]+)/([^/#?]+)")


def media_uris_of(content: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The (server name, media ID) pairs an event's content refers to."""
    found: list[tuple[str, str]] = []
    info = content.get("info")
    candidates = [content.get("url")]
    if isinstance(info, dict):
        candidates.append(info.get("thumbnail_url"))
    for value in candidates:
        if isinstance(value, str):
            match = _MXC.match(value)
            if match:
                found.append((match.group(1), match.group(2)))
    return found


class MediaAdmin:
    def __init__(
        self, server_name: str, rooms: RoomStore, events: EventStore, media: MediaService
    ) -> None:
        self._server_name = server_name
        self._rooms = rooms
        self._events = events
        self._media = media

    async def media_info(self, server_name: str, media_id: str) -> dict[str, Any]:
        """The ``media_info`` of local or cached remote media, in Synapse's shape."""
        record = await self._media.info(server_name, media_id)
        local = server_name == self._server_name
        return {
            "media_origin": None if local else record.origin,
            "user_id": record.user_id,
            "media_id": record.media_id,
            "media_type": record.content_type,
            "media_length": record.size,
            "upload_name": record.upload_name,
            "created_ts": record.created_ts,
            "filesystem_id": None if local else record.sha256,
            "url_cache": None,
            "last_access_ts": record.last_access_ts,
            "quarantined_by": (record.quarantined_by or "") if record.quarantined else None,
            "authenticated": True,
            "safe_from_quarantine": record.safe_from_quarantine if local else None,
            "sha256": record.sha256,
        }

    async def _uris(self, room_id: str) -> list[tuple[str, str]]:
        seen: dict[tuple[str, str], None] = {}
        for content in await self._events.contents_containing(room_id, "mxc://"):
            for uri in media_uris_of(content):
                seen[uri] = None
        return list(seen)

    async def media_of_room(self, room_id: str) -> tuple[list[str], list[str]]:
        """The local and the remote mxc:// URIs of the room (M_NOT_FOUND: no such room)."""
        if not await self._rooms.room_exists(room_id):
            raise NotFound("Room not found")
        local: list[str] = []
        remote: list[str] = []
        for origin, media_id in await self._uris(room_id):
            target = local if origin == self._server_name else remote
            target.append(f"mxc://{origin}/{media_id}")
        return local, remote

    async def quarantine_room(self, room_id: str, quarantined_by: str) -> int:
        """Quarantine the room's media, except local media protected from it; return
        how many were quarantined (0 for a room this server does not know)."""
        return await self._media.quarantine_many(await self._uris(room_id), quarantined_by)

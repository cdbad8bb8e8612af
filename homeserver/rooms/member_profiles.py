"""A user's new display name or avatar reaches the rooms they are joined to.

Client-server API, "Profiles" > "Events on Change of Profile Information": when a
user changes their display name or avatar URL, the server sends a new
``m.room.member`` join event (with the new profile fields) to every room the user
is joined to. As in Synapse, the new event carries the global profile, replacing a
per-room display name or avatar the user had set there.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from storage.stores import Stores

logger = logging.getLogger(__name__)

# Sends a fresh join of a local user to a room (MembershipService.join).
Rejoin = Callable[[str, str], Awaitable[object]]


class MemberProfileUpdater:
    """A ``ProfileService.change_hooks`` entry."""

    def __init__(self, stores: Stores, rejoin: Rejoin) -> None:
        self._stores = stores
        self._rejoin = rejoin

    async def on_profile_changed(self, user_id: str, changed: dict[str, Any]) -> None:
        rooms = await self._stores.state.rooms_for_user(user_id)
        for room_id in sorted(r for r, membership in rooms.items() if membership == "join"):
            try:
                await self._rejoin(user_id, room_id)
            except Exception:
                # One room refusing (e.g. the user may no longer join it) does not
                # keep the new profile from the others.
                logger.exception("could not update %s's member event in %s", user_id, room_id)

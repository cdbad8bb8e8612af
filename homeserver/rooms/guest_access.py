"""Guests in rooms (client-server API: "Guest access" > "Server behaviour").

"Servers MUST only allow guest users to join rooms if the ``m.room.guest_access``
state event is present on the room, and has the ``guest_access`` value
``can_join``. If the ``m.room.guest_access`` event is changed to stop this from
being the case, the server MUST set those users' ``m.room.member`` state to
``leave``."

Guests are a local concept: whether a user is a guest is never sent to other
servers, and the authorization rules know nothing of it (the module's "Security
considerations": each server enforces these rules for its own guests). So this
server checks its own guests' joins (``MembershipService``, with
:func:`guests_may_join` on the room's current state, or on the stripped state of
an invite to a room it is not in), and :class:`GuestEvictor` makes its own guests
leave when a room stops admitting guests, whether the change was made here or
arrived over federation. As Synapse does, the guest leaves (a leave by the guest
itself, made by this server) rather than being kicked by someone with power.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any

from homeserver.events import server_name_of
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

GUEST_ACCESS = "m.room.guest_access"
CAN_JOIN = "can_join"

# Sends a leave of a local user (MembershipService.change as the user itself).
LeaveRoom = Callable[[str, str], Awaitable[object]]


def guests_may_join(guest_access_content: Mapping[str, Any] | None) -> bool:
    """Whether a room whose ``m.room.guest_access`` has this content (None: no such
    state event) admits guests."""
    return guest_access_content is not None and guest_access_content.get("guest_access") == (
        CAN_JOIN
    )


def guest_access_in_stripped(stripped: Iterable[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The content of ``m.room.guest_access`` in stripped state (None if absent)."""
    for entry in stripped:
        if entry.get("type") == GUEST_ACCESS and entry.get("state_key", "") == "":
            content = entry.get("content")
            return content if isinstance(content, Mapping) else {}
    return None


class GuestEvictor:
    """Makes local guests leave a room once its ``m.room.guest_access`` stops being
    ``can_join`` (an after-persist hook of the event persister).

    The hook runs while the room's lane is held, so the leaves are sent from a task
    of their own; :meth:`drain` waits for those running (tests, shutdown). Each task
    reads the room's current state when it runs, so a quick revoke-and-restore
    leaves the guests alone, and a repeated revoke finds nobody left to evict.
    """

    def __init__(self, server_name: str, stores: Stores, leave_room: LeaveRoom) -> None:
        self._server_name = server_name
        self._stores = stores
        self._leave_room = leave_room
        self._tasks: set[asyncio.Task[None]] = set()

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        event = stored.event
        if (
            event.type != GUEST_ACCESS
            or event.state_key != ""
            or stored.rejected_reason is not None
            or stored.soft_failed
            or stored.outlier
            or guests_may_join(event.content)
        ):
            return
        task = asyncio.get_running_loop().create_task(self._evict_in_background(event.room_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _evict_in_background(self, room_id: str) -> None:
        try:
            await self.evict_guests(room_id)
        except Exception:
            logger.exception("could not evict the guests of %s", room_id)

    async def evict_guests(self, room_id: str) -> list[str]:
        """Send a leave for every local guest joined to (or invited to) ``room_id``
        unless its current state admits guests; returns the guests who left."""
        state = await self._stores.state.get_current_state(room_id)
        access_id = state.get((GUEST_ACCESS, ""))
        access = await self._stores.events.get_event(access_id) if access_id else None
        if guests_may_join(access.event.content if access is not None else None):
            return []
        members = await self._stores.state.current_members(room_id)
        candidates = [
            user_id
            for user_id, membership in members.items()
            if membership in ("join", "invite") and server_name_of(user_id) == self._server_name
        ]
        evicted: list[str] = []
        for user_id in candidates:
            record = await self._stores.accounts.get_user(user_id)
            if record is None or not record.is_guest:
                continue
            try:
                await self._leave_room(user_id, room_id)
            except Exception:
                logger.exception("could not make guest %s leave %s", user_id, room_id)
                continue
            evicted.append(user_id)
        if evicted:
            logger.info("guests left %s as it no longer admits guests: %s", room_id, evicted)
        return evicted

    async def drain(self) -> None:
        """Wait for the evictions under way."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task

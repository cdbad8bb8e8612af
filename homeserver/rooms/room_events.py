"""Single events of a room: fetching one, and redacting one (client-server: "Redactions").

``GET /rooms/{roomId}/event/{eventId}`` and ``PUT /rooms/{roomId}/redact/{eventId}/{txnId}``.
Whether a user may see an event is decided by the history visibility rules, as for
/messages and /context (:meth:`RoomHistory.visible_event`).
"""

from __future__ import annotations

from typing import Any

from homeserver.errors import Forbidden, InvalidParam, NotFound
from homeserver.events import PowerLevels, server_name_of
from homeserver.rooms.creator import EventCreator, TxnKey
from homeserver.rooms.history import RoomHistory
from storage.events import StoredEvent
from storage.stores import Stores


class RoomEventService:
    def __init__(
        self, server_name: str, stores: Stores, creator: EventCreator, history: RoomHistory
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self._history = history

    async def get_event(self, user_id: str, room_id: str, event_id: str) -> StoredEvent:
        """The event if it is in the room's timeline and the user may see it under the
        room's history visibility (client-server: "Room History Visibility"); M_NOT_FOUND
        otherwise, as the spec asks for events the user has no permission to read."""
        return await self._history.visible_event(user_id, room_id, event_id)

    async def redact(
        self,
        user_id: str,
        room_id: str,
        event_id: str,
        *,
        content: dict[str, Any],
        txn: TxnKey | None = None,
        own_only: bool = False,
    ) -> StoredEvent:
        """Send an m.room.redaction of ``event_id`` (rooms: "Redactions").

        ``own_only``: the sender is suspended, and may redact only their own events
        (client-server API, "Account suspension"; 403 M_USER_SUSPENDED otherwise).

        The room version's auth rules check the power to send a redaction at all;
        redacting another user's event needs the room's ``redact`` level (checked
        here, as room versions 3+ leave it to the server), or being a server admin
        redacting an event of one of this server's users.
        """
        if txn is not None:
            existing = await self._stores.events.get_event_id_for_txn(
                user_id, txn.device_id, txn.txn_id
            )
            stored = await self._stores.events.get_event(existing) if existing else None
            if stored is not None:
                return stored
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Unknown room")
        target = await self._stores.events.get_event(event_id)
        if target is not None and target.event.room_id != room_id:
            # as Synapse: a redaction names an event of its own room
            raise InvalidParam("Cannot redact an event of another room")
        if own_only and (target is None or target.event.sender != user_id):
            raise Forbidden(
                "Redacting others' events while account is suspended is not allowed.",
                errcode="M_USER_SUSPENDED",
            )
        if target is None or target.event.sender != user_id:
            may_redact_others = await self._has_redact_power(user_id, room_id)
            if target is None and not may_redact_others:
                raise NotFound("Event not found")
            if not may_redact_others and not await self._admin_redacting_local(user_id, target):
                raise Forbidden("You don't have permission to redact this event")
        content = {k: v for k, v in content.items() if k != "redacts"}
        return await self._creator.send(
            room_id, "m.room.redaction", user_id, content, redacts=event_id, txn=txn
        )

    async def _has_redact_power(self, user_id: str, room_id: str) -> bool:
        rv = await self._creator.room_version(room_id)
        state = await self._stores.state.get_current_state(room_id)
        keys = {
            k: state[k] for k in (("m.room.create", ""), ("m.room.power_levels", "")) if k in state
        }
        events = await self._creator.state_events(keys)
        levels = PowerLevels(
            events.get(("m.room.create", "")), events.get(("m.room.power_levels", "")), rv
        )
        return levels.user_level(user_id) >= levels.redact

    async def _admin_redacting_local(self, user_id: str, target: StoredEvent | None) -> bool:
        if target is None or server_name_of(target.event.sender) != self._server_name:
            return False
        user = await self._stores.accounts.get_user(user_id)
        return user is not None and user.is_admin

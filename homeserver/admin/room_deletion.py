"""Shutting down and deleting a room (Synapse admin API ``DELETE /v1/rooms/{roomId}``,
synchronous, and ``DELETE /v2/rooms/{roomId}``, in the background).

The steps, as Synapse takes them: block the room if asked; make a replacement room
(``new_room_user_id``, public, everyone else at power -10 so they cannot speak) with a
message; make every local member leave (their own leave: invites rejected, knocks
withdrawn), forget the room and join the replacement; take the room off the
directory and move its local aliases to the replacement (or delete them); then,
with ``purge``, delete every row of the room (refused while local users are still
joined, unless ``force_purge``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from homeserver.admin.purge import RoomPurger
from homeserver.admin.tasks import AdminTasks
from homeserver.clock import Clock
from homeserver.errors import MatrixError, NotFound
from homeserver.rooms.creation import RoomCreationRequest, RoomCreationService
from homeserver.rooms.creator import EventCreator
from homeserver.rooms.membership import MembershipService
from storage.stores import Stores

logger = logging.getLogger(__name__)

DEFAULT_ROOM_NAME = "Content Violation Notification"
DEFAULT_MESSAGE = (
    "Sharing illegal content on this server is not permitted and rooms in violation"
    " will be blocked."
)
NEW_ROOM_USERS_DEFAULT = -10


@dataclass(frozen=True)
class DeletionRequest:
    new_room_user_id: str | None = None
    room_name: str = DEFAULT_ROOM_NAME
    message: str = DEFAULT_MESSAGE
    block: bool = False
    purge: bool = True
    force_purge: bool = False


@dataclass
class ShutdownResult:
    kicked_users: list[str] = field(default_factory=list)
    failed_to_kick_users: list[str] = field(default_factory=list)
    local_aliases: list[str] = field(default_factory=list)
    new_room_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kicked_users": self.kicked_users,
            "failed_to_kick_users": self.failed_to_kick_users,
            "local_aliases": self.local_aliases,
            "new_room_id": self.new_room_id,
        }


@dataclass
class DeletionTask:
    delete_id: str
    room_id: str
    status: str = "scheduled"  # then "active", "complete" or "failed"
    error: str | None = None
    result: ShutdownResult = field(default_factory=ShutdownResult)
    task: asyncio.Task[None] | None = None
    finished_ts: int | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "delete_id": self.delete_id,
            "room_id": self.room_id,
            "status": self.status,
            "shutdown_room": self.result.to_json(),
        }
        if self.error is not None:
            body["error"] = self.error
        return body


class RoomDeletion:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        creator: EventCreator,
        membership: MembershipService,
        room_creation: RoomCreationService,
        purger: RoomPurger,
        clock: Clock,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self._membership = membership
        self._room_creation = room_creation
        self._purger = purger
        self._tasks: AdminTasks[DeletionTask] = AdminTasks(clock, "delete")

    def _is_mine(self, user_id: str) -> bool:
        return user_id.endswith(":" + self._server_name)

    def check_request(self, request: DeletionRequest) -> None:
        if request.new_room_user_id is not None and not self._is_mine(request.new_room_user_id):
            raise MatrixError(400, "M_INVALID_PARAM", "User must be our own: new_room_user_id")

    # -- v1: synchronous ------------------------------------------------------------------

    async def delete_now(
        self, admin_id: str, room_id: str, request: DeletionRequest
    ) -> ShutdownResult:
        """Shut the room down (and purge it), answering when done. An unknown room
        is only blocked (with ``block``); otherwise it is an error."""
        self.check_request(request)
        if not await self._stores.rooms.room_exists(room_id):
            if request.block:
                await self._stores.room_admin.block(room_id, admin_id)
                return ShutdownResult()
            raise MatrixError(400, "M_UNKNOWN", f"Unknown room id {room_id}")
        result = ShutdownResult()
        await self._shutdown(admin_id, room_id, request, result)
        if request.purge:
            await self._purge(room_id, request)
        return result

    # -- v2: in the background --------------------------------------------------------------

    async def start(self, admin_id: str, room_id: str, request: DeletionRequest) -> str:
        self.check_request(request)
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound(f"Unknown room id {room_id}")
        if any(
            t.room_id == room_id and t.status in ("scheduled", "active")
            for t in self._tasks.records()
        ):
            raise MatrixError(400, "M_UNKNOWN", f"Room deletion already in progress for {room_id}")
        record = DeletionTask(secrets.token_urlsafe(12), room_id)

        async def delete() -> None:
            record.status = "active"
            await self._shutdown(admin_id, room_id, request, record.result)
            if request.purge:
                await self._purge(room_id, request)

        self._tasks.launch(record.delete_id, record, delete)
        return record.delete_id

    def status(self, delete_id: str) -> DeletionTask:
        return self._tasks.get(delete_id)

    def statuses_of_room(self, room_id: str) -> list[DeletionTask]:
        found = [t for t in self._tasks.records() if t.room_id == room_id]
        if not found:
            raise NotFound(f"No delete task for room_id '{room_id}' found")
        return found

    async def wait(self, delete_id: str) -> DeletionTask:
        return await self._tasks.wait(delete_id)

    async def stop(self) -> None:
        await self._tasks.stop()

    # -- the steps ---------------------------------------------------------------------------

    async def _shutdown(
        self, admin_id: str, room_id: str, request: DeletionRequest, result: ShutdownResult
    ) -> None:
        if request.block:
            await self._stores.room_admin.block(room_id, admin_id)
        if request.new_room_user_id is not None:
            result.new_room_id = await self._replacement_room(request)
        members = await self._stores.state.current_members(room_id)
        local = sorted(
            u for u, m in members.items() if self._is_mine(u) and m in ("join", "invite", "knock")
        )
        for user_id in local:
            try:
                await self._membership.change(user_id, room_id, user_id, "leave")
                await self._stores.rooms.forget_room(user_id, room_id)
                if result.new_room_id is not None and user_id != request.new_room_user_id:
                    await self._membership.join(user_id, result.new_room_id)
                result.kicked_users.append(user_id)
            except MatrixError as exc:
                logger.warning("could not remove %s from %s: %s", user_id, room_id, exc.message)
                result.failed_to_kick_users.append(user_id)
        await self._stores.rooms.set_public(room_id, False)
        aliases = sorted(await self._stores.rooms.aliases_for_room(room_id))
        result.local_aliases = aliases
        if result.new_room_id is not None:
            await self._stores.rooms.move_aliases(room_id, result.new_room_id)
        else:
            for alias in aliases:
                await self._stores.rooms.delete_alias(alias)

    async def _replacement_room(self, request: DeletionRequest) -> str:
        assert request.new_room_user_id is not None
        creator = request.new_room_user_id
        room_id, _alias = await self._room_creation.create_room(
            creator,
            RoomCreationRequest(
                preset="public_chat",
                name=request.room_name,
                power_level_content_override={"users_default": NEW_ROOM_USERS_DEFAULT},
            ),
        )
        await self._creator.send(
            room_id, "m.room.message", creator, {"msgtype": "m.text", "body": request.message}
        )
        return room_id

    async def _purge(self, room_id: str, request: DeletionRequest) -> None:
        if not request.force_purge:
            members = await self._stores.state.current_members(room_id)
            if any(m == "join" and self._is_mine(u) for u, m in members.items()):
                raise MatrixError(
                    400, "M_UNKNOWN", f"Users are still joined to this room: {room_id}"
                )
        await self._purger.purge_room(room_id)

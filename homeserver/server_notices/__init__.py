"""Server notices (Synapse's feature, standard Matrix on the wire): messages from the
server's admins to one local user, sent as the configured system user into a room
kept for that user.

- The room is made at the first notice: private, not federated, named and described
  as ``server_notices`` says, with ``users_default`` below ``events_default`` so the
  user cannot write in it; the user is invited (or, with ``auto_join``, joined) and
  the room tagged ``m.server_notice`` for them. Later notices reuse it while the
  user is still invited or joined and the system user still in it.
- The user cannot reject the invite (403 ``M_CANNOT_LEAVE_SERVER_NOTICE_ROOM``), but
  may leave the room once joined: the spec says servers should not prevent that, and
  Synapse does not; the next notice then comes in a new room.
- The system user is created, without a password, the first time it is needed.
"""

from __future__ import annotations

import asyncio
from typing import Any

from homeserver.account_data import AccountDataService
from homeserver.accounts import AccountService
from homeserver.config import ServerNoticesConfig
from homeserver.errors import Forbidden, MatrixError, NotFound
from homeserver.events import is_valid_user_id, server_name_of
from homeserver.profiles import ProfileService
from homeserver.rooms.creation import RoomCreationRequest, RoomCreationService
from homeserver.rooms.creator import EventCreator, TxnKey
from homeserver.rooms.membership import MembershipService
from storage.stores import Stores

SERVER_NOTICE_TAG = "m.server_notice"
# The user's level in the room: below events_default (0), so they cannot send.
USER_POWER_LEVEL = -10


class ServerNoticesNotEnabled(MatrixError):
    def __init__(self) -> None:
        super().__init__(400, "M_UNKNOWN", "Server notices are not enabled on this server")


class ServerNotices:
    def __init__(
        self,
        server_name: str,
        config: ServerNoticesConfig | None,
        stores: Stores,
        accounts: AccountService,
        profiles: ProfileService,
        room_creation: RoomCreationService,
        membership: MembershipService,
        creator: EventCreator,
        account_data: AccountDataService,
    ) -> None:
        self._server_name = server_name
        self._config = config
        self._stores = stores
        self._rooms = stores.server_notices
        self._accounts = accounts
        self._profiles = profiles
        self._room_creation = room_creation
        self._membership = membership
        self._creator = creator
        self._account_data = account_data
        self._room_lock = asyncio.Lock()
        if config is not None:
            membership.leave_checks.append(self.check_leave)

    @property
    def enabled(self) -> bool:
        return self._config is not None

    @property
    def system_user_id(self) -> str | None:
        if self._config is None:
            return None
        return f"@{self._config.system_mxid_localpart}:{self._server_name}"

    async def send(
        self,
        user_id: str,
        content: dict[str, Any],
        *,
        event_type: str = "m.room.message",
        state_key: str | None = None,
        txn: TxnKey | None = None,
    ) -> str:
        """Send a notice to a local user (its room made if need be); the event ID."""
        config = self._config
        system = self.system_user_id
        if config is None or system is None:
            raise ServerNoticesNotEnabled()
        if not is_valid_user_id(user_id):
            raise MatrixError(400, "M_INVALID_PARAM", f"Invalid user ID: {user_id}")
        if server_name_of(user_id) != self._server_name:
            raise MatrixError(400, "M_UNKNOWN", "Server notices can only be sent to local users")
        if user_id == system or await self._stores.accounts.get_user(user_id) is None:
            raise NotFound("User not found")
        room_id = await self._room_for(user_id, config, system)
        stored = await self._creator.send(
            room_id, event_type, system, content, state_key=state_key, txn=txn
        )
        return stored.event_id

    async def check_leave(self, user_id: str, room_id: str) -> None:
        """A leave hook of the membership service: the invite to a user's notices room
        cannot be rejected (client-server API, "Server Notices")."""
        if await self._rooms.room_of(user_id) != room_id:
            return
        members = await self._stores.state.current_members(room_id)
        if members.get(user_id) == "invite":
            raise Forbidden(
                "You cannot reject this invite", errcode="M_CANNOT_LEAVE_SERVER_NOTICE_ROOM"
            )

    async def _room_for(self, user_id: str, config: ServerNoticesConfig, system: str) -> str:
        async with self._room_lock:
            room_id = await self._rooms.room_of(user_id)
            if room_id is not None and await self._usable(room_id, user_id, system):
                return room_id
            await self._ensure_system_user(config, system)
            room_id = await self._create_room(user_id, config, system)
            await self._rooms.set_room(user_id, room_id)
            return room_id

    async def _usable(self, room_id: str, user_id: str, system: str) -> bool:
        return await self._membership.membership_of(
            room_id, system
        ) == "join" and await self._membership.membership_of(room_id, user_id) in (
            "invite",
            "join",
        )

    async def _ensure_system_user(self, config: ServerNoticesConfig, system: str) -> None:
        if await self._stores.accounts.get_user(system) is not None:
            return
        await self._accounts.register(
            config.system_mxid_localpart,
            None,
            displayname=config.system_mxid_display_name,
            login=False,
        )
        if config.system_mxid_avatar_url is not None:
            await self._profiles.set_field(
                system, system, "avatar_url", config.system_mxid_avatar_url
            )

    async def _create_room(self, user_id: str, config: ServerNoticesConfig, system: str) -> str:
        initial_state: list[dict[str, Any]] = []
        if config.room_avatar_url is not None:
            initial_state.append(
                {
                    "type": "m.room.avatar",
                    "state_key": "",
                    "content": {"url": config.room_avatar_url},
                }
            )
        request = RoomCreationRequest(
            preset="private_chat",
            name=config.room_name,
            topic=config.room_topic,
            creation_content={"m.federate": False},
            initial_state=initial_state,
            power_level_content_override={"users_default": USER_POWER_LEVEL},
        )
        room_id, _ = await self._room_creation.create_room(system, request)
        await self._membership.change(system, room_id, user_id, "invite")
        if config.auto_join:
            await self._membership.join(user_id, room_id)
        await self._account_data.set_tag(user_id, room_id, SERVER_NOTICE_TAG, {})
        return room_id

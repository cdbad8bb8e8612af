"""The user admin operations of Synapse's admin API: list, query, create or modify,
deactivate (and erase), reset password, whois, devices, joined rooms, media, login
as a user, shadow-ban, rate-limit overrides, account data, pushers, admin flag,
suspension. Every operation is on local users; remote user IDs get Synapse's 400."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from homeserver.accounts import AccountService
from homeserver.appservice import AppServices
from homeserver.auth import new_token, token_hash
from homeserver.clock import Clock
from homeserver.errors import Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.media.service import MediaService
from homeserver.profiles import ProfileService
from homeserver.push.pushers import PusherPool
from homeserver.sessions import SessionService
from storage.database import Transaction
from storage.devices import DeviceRecord
from storage.media import MediaRecord
from storage.pushers import PusherRecord
from storage.stores import Stores
from storage.user_admin import USER_ORDERS, AdminUserRow, UserFilter

USER_TYPES = ("bot", "support")
# the listing's order_by values
USER_ORDER_NAMES = tuple(USER_ORDERS)
# what the handlers show (the records of the stores this service reads)
__all__ = [
    "USER_ORDER_NAMES",
    "AccountChanges",
    "AdminUserRow",
    "DeviceRecord",
    "MediaRecord",
    "PusherRecord",
    "UserAdmin",
    "UserFilter",
]
MAX_PASSWORD_LENGTH = 512


class NotLocal(MatrixError):
    """Synapse's answer to a remote user ID: 400 M_UNKNOWN with the endpoint's words."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "M_UNKNOWN", message)


@dataclass(frozen=True)
class AccountChanges:
    """The body of ``PUT /_synapse/admin/v2/users/{userId}``, checked; None (or
    ``has_*`` False) leaves a field as it is."""

    password: str | None = None
    logout_devices: bool = True
    displayname: str | None = None
    has_displayname: bool = False
    avatar_url: str | None = None
    has_avatar_url: bool = False
    admin: bool | None = None
    deactivated: bool | None = None
    locked: bool | None = None
    user_type: str | None = None
    has_user_type: bool = False
    threepids: set[tuple[str, str]] | None = None
    external_ids: list[tuple[str, str]] | None = None


class UserAdmin:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        accounts: AccountService,
        sessions: SessionService,
        profiles: ProfileService,
        media: MediaService,
        pushers: PusherPool,
        clock: Clock,
        appservices: AppServices | None = None,
    ) -> None:
        self._appservices = appservices
        self._server_name = server_name
        self._stores = stores
        self._accounts = accounts
        self._sessions = sessions
        self._profiles = profiles
        self._media = media
        self._pushers = pushers
        self._clock = clock

    # -- who ------------------------------------------------------------------------------

    def check_local(self, user_id: str, message: str = "Can only look up local users") -> None:
        """400 M_INVALID_PARAM for a string that is no user ID, 400 ``message`` for a
        user of another server."""
        localpart, sep, server = user_id.partition(":")
        if not localpart.startswith("@") or not sep or not server:
            raise InvalidParam(f"Invalid user ID: {user_id}")
        if server != self._server_name:
            raise NotLocal(message)

    @staticmethod
    def check_local_or_remote(user_id: str) -> None:
        """400 M_INVALID_PARAM for a string that is no user ID."""
        localpart, sep, server = user_id.partition(":")
        if not localpart.startswith("@") or not sep or not server:
            raise InvalidParam(f"Invalid user ID: {user_id}")

    async def existing(
        self, user_id: str, message: str = "Can only look up local users"
    ) -> AdminUserRow:
        """The local user; 404 M_NOT_FOUND if there is none."""
        self.check_local(user_id, message)
        row = await self._stores.user_admin.get_user(user_id)
        if row is None:
            raise NotFound("User not found")
        return row

    async def is_admin(self, user_id: str) -> bool:
        return await self._accounts.is_admin(user_id)

    # -- listing and query ---------------------------------------------------------------

    async def list_users(
        self, where: UserFilter, order_by: str, backwards: bool, limit: int, offset: int
    ) -> tuple[list[AdminUserRow], int]:
        return await self._stores.user_admin.list_users(where, order_by, backwards, limit, offset)

    async def user_json(self, user_id: str) -> dict[str, Any]:
        """The query answer of ``GET /_synapse/admin/v2/users/{userId}``."""
        row = await self.existing(user_id)
        threepids = await self._stores.user_admin.threepids(user_id)
        external_ids = await self._stores.user_admin.external_ids(user_id)
        appservice_id = None
        if self._appservices is not None:
            for service in self._appservices.services:
                if service.sender == user_id or service.owns_user(user_id):
                    appservice_id = service.id
                    break
        return {
            "name": row.user_id,
            "displayname": row.displayname,
            "avatar_url": row.avatar_url,
            "threepids": [
                {
                    "medium": t.medium,
                    "address": t.address,
                    "added_at": t.added_at,
                    "validated_at": t.validated_at,
                }
                for t in threepids
            ],
            "is_guest": row.is_guest,
            "admin": row.is_admin,
            "deactivated": row.deactivated,
            "erased": row.erased,
            "shadow_banned": row.shadow_banned,
            # seconds, as Synapse's query (its listing gives milliseconds)
            "creation_ts": row.created_ts // 1000,
            "last_seen_ts": row.last_seen_ts,
            "appservice_id": appservice_id,
            "consent_server_notice_sent": None,
            "consent_version": None,
            "consent_ts": None,
            "external_ids": [
                {"auth_provider": provider, "external_id": external_id}
                for provider, external_id in external_ids
            ],
            "user_type": row.user_type,
            "locked": row.locked,
            "suspended": row.suspended,
        }

    # -- create or modify --------------------------------------------------------------------

    async def create_or_modify(
        self, requester_id: str, user_id: str, changes: AccountChanges
    ) -> bool:
        """Apply ``changes`` to the account, creating it first if it does not exist;
        True when it was created."""
        self.check_local(user_id, "This endpoint can only be used with local users")
        if changes.deactivated and changes.locked:
            raise MatrixError(400, "M_UNKNOWN", "An user can't be deactivated and locked")
        row = await self._stores.user_admin.get_user(user_id)
        if row is None:
            await self._create(user_id, changes)
            return True
        await self._modify(requester_id, row, changes)
        return False

    async def _create(self, user_id: str, changes: AccountChanges) -> None:
        localpart = user_id[1:].partition(":")[0]
        await self._accounts.register(
            localpart,
            changes.password,
            admin=bool(changes.admin),
            displayname=changes.displayname if changes.has_displayname else None,
            login=False,
        )
        admin_store = self._stores.user_admin
        if changes.has_user_type:
            await admin_store.set_user_type(user_id, changes.user_type)
        if changes.locked:
            await admin_store.set_flag(user_id, "locked", True)
        if changes.threepids is not None:
            await admin_store.replace_threepids(user_id, changes.threepids, self._clock.time_ms())
        if changes.external_ids is not None:
            await self._replace_external_ids(user_id, changes.external_ids)
        if changes.has_avatar_url and changes.avatar_url:
            await self._profiles.set_field(user_id, user_id, "avatar_url", changes.avatar_url)
        if changes.deactivated:
            await self._accounts.deactivate(user_id)

    async def _modify(self, requester_id: str, row: AdminUserRow, changes: AccountChanges) -> None:
        user_id = row.user_id
        admin_store = self._stores.user_admin
        if changes.admin is not None and changes.admin != row.is_admin:
            if user_id == requester_id and not changes.admin:
                raise MatrixError(400, "M_UNKNOWN", "You may not demote yourself.")
        if changes.external_ids is not None:
            await self._replace_external_ids(user_id, changes.external_ids)
        if changes.deactivated is False and row.deactivated:
            await self.reactivate(user_id)
        if changes.has_displayname:
            if changes.displayname:
                await self._profiles.set_field(user_id, user_id, "displayname", changes.displayname)
            else:
                await self._profiles.delete_field(user_id, user_id, "displayname")
        if changes.threepids is not None:
            await admin_store.replace_threepids(user_id, changes.threepids, self._clock.time_ms())
        if changes.has_avatar_url:
            if changes.avatar_url:
                await self._profiles.set_field(user_id, user_id, "avatar_url", changes.avatar_url)
            else:
                await self._profiles.delete_field(user_id, user_id, "avatar_url")
        if changes.admin is not None and changes.admin != row.is_admin:
            await self._stores.accounts.set_admin(user_id, changes.admin)
        if changes.password is not None:
            await self._accounts.change_password(
                user_id, changes.password, keep_device=None, logout_devices=changes.logout_devices
            )
        if changes.deactivated and not row.deactivated:
            await self._accounts.deactivate(user_id)
        if changes.locked is not None and changes.locked != row.locked:
            await admin_store.set_flag(user_id, "locked", changes.locked)
            self._sessions.forget_user(user_id)
        if changes.has_user_type:
            await admin_store.set_user_type(user_id, changes.user_type)

    async def _replace_external_ids(
        self, user_id: str, external_ids: list[tuple[str, str]]
    ) -> None:
        if not await self._stores.user_admin.replace_external_ids(user_id, external_ids):
            raise MatrixError(409, "M_UNKNOWN", "External id is already in use.")

    async def reactivate(self, user_id: str) -> None:
        """Make a deactivated account usable again (it needs a new password or an
        external ID to log in), no longer erased, back in the user directory."""

        await self._stores.user_admin.reactivate(user_id)
        self._sessions.forget_user(user_id)

    # -- deactivation and passwords ----------------------------------------------------------

    async def deactivate(self, user_id: str, *, erase: bool) -> None:
        await self.existing(user_id, "Can only deactivate local users")
        await self._accounts.deactivate(user_id, erase=erase)

    async def reset_password(self, user_id: str, new_password: str, logout_devices: bool) -> None:
        await self.existing(user_id, "Can only change the password of local users")
        await self._accounts.change_password(
            user_id, new_password, keep_device=None, logout_devices=logout_devices
        )

    # -- sessions and devices -----------------------------------------------------------------

    async def whois(self, user_id: str) -> dict[str, Any]:
        """Each device of the user with the (IP, user agent) pairs it was seen from."""
        self.check_local(user_id, "Can only whois a local user")
        devices = await self._sessions.devices(user_id)
        connections = await self._stores.user_admin.connections(user_id)
        by_device: dict[str, list[dict[str, Any]]] = {d.device_id: [] for d in devices}
        for seen in connections:
            if seen.device_id in by_device:
                by_device[seen.device_id].append(
                    {"ip": seen.ip, "last_seen": seen.last_seen, "user_agent": seen.user_agent}
                )
        return {
            "user_id": user_id,
            "devices": {
                device_id: {"sessions": [{"connections": found}]}
                for device_id, found in by_device.items()
            },
        }

    async def devices(self, user_id: str) -> list[DeviceRecord]:
        await self.existing(user_id)
        return await self._sessions.devices(user_id)

    async def device(self, user_id: str, device_id: str) -> DeviceRecord:
        await self.existing(user_id)
        return await self._sessions.device(user_id, device_id)

    async def create_device(self, user_id: str, device_id: str) -> None:
        await self.existing(user_id)
        await self._sessions.upsert_device(user_id, device_id, None)

    async def rename_device(self, user_id: str, device_id: str, display_name: str | None) -> None:
        await self.existing(user_id)
        await self._sessions.device(user_id, device_id)  # 404 for an unknown device
        if display_name is not None:
            await self._sessions.rename_device(user_id, device_id, display_name)

    async def delete_devices(self, user_id: str, device_ids: list[str]) -> None:
        """Delete devices and their tokens; unknown device IDs are ignored (as Synapse)."""
        await self.existing(user_id)
        await self._sessions.delete_devices(user_id, device_ids)

    async def login_as(self, requester_id: str, user_id: str, valid_until_ms: int | None) -> str:
        """A new access token of no device for the user (an admin acting for them)."""
        self.check_local(user_id, "Only local users can be logged in as")
        row = await self._stores.user_admin.get_user(user_id)
        if row is None:
            raise NotFound("User not found")
        if user_id == requester_id:
            raise MatrixError(400, "M_UNKNOWN", "Cannot use admin API to login as self")
        token = new_token("syt")
        now = self._clock.time_ms()

        async def txn_func(txn: Transaction) -> None:
            await self._stores.tokens.add_access_token_txn(
                txn, token_hash(token), user_id, "", created_ts=now, expires_ts=valid_until_ms
            )

        await self._stores.db.run_transaction("admin_login_as_user", txn_func)
        return token

    # -- rooms, media, account data, pushers ----------------------------------------------------

    async def joined_rooms(self, user_id: str) -> list[str]:
        """The rooms the user is joined to (a remote user: those this server knows)."""
        self.check_local_or_remote(user_id)
        rooms = await self._stores.state.rooms_for_user(user_id)
        return sorted(room_id for room_id, membership in rooms.items() if membership == "join")

    async def memberships(self, user_id: str) -> dict[str, str]:
        """Room ID -> the user's current membership, for every room this server knows
        the user in (local or remote users)."""
        self.check_local_or_remote(user_id)
        return dict(await self._stores.state.rooms_for_user(user_id))

    async def user_of_external_id(self, auth_provider: str, external_id: str) -> str:
        found = await self._stores.external_ids.get_user(auth_provider, external_id)
        if found is None:
            raise NotFound("User not found")
        return found

    async def user_of_threepid(self, medium: str, address: str) -> str:
        found = await self._stores.user_admin.user_of_threepid(medium, address)
        if found is None:
            raise NotFound("User not found")
        return found

    async def media(
        self, user_id: str, order_column: str, backwards: bool, limit: int, offset: int
    ) -> tuple[list[MediaRecord], int]:
        await self.existing(user_id)
        return await self._media.list_user_media(user_id, order_column, backwards, limit, offset)

    async def delete_media(
        self, user_id: str, order_column: str, backwards: bool, limit: int, offset: int
    ) -> list[str]:
        """Delete a page of the user's local media (rows, thumbnails, files nothing
        else uses); the IDs deleted."""
        records, _ = await self.media(user_id, order_column, backwards, limit, offset)
        deleted: list[str] = []
        for record in records:
            try:
                await self._media.delete_local(self._server_name, record.media_id)
            except NotFound:
                continue  # deleted meanwhile
            deleted.append(record.media_id)
        return deleted

    async def account_data(self, user_id: str) -> dict[str, Any]:
        """The user's stored account data: ``global`` and per room."""
        await self.existing(user_id)
        global_data, rooms = await self._stores.user_admin.account_data(user_id)
        return {"global": global_data, "rooms": rooms}

    async def pushers(self, user_id: str) -> list[PusherRecord]:
        await self.existing(user_id)
        return await self._pushers.get_pushers(user_id)

    # -- flags -------------------------------------------------------------------------------------

    async def set_admin(self, requester_id: str, user_id: str, admin: bool) -> None:
        await self.existing(user_id, "Only local users can be admins of this homeserver")
        if user_id == requester_id and not admin:
            raise MatrixError(400, "M_UNKNOWN", "You may not demote yourself.")
        await self._stores.accounts.set_admin(user_id, admin)

    async def set_shadow_banned(self, user_id: str, banned: bool) -> None:
        await self.existing(user_id, "Only local users can be shadow-banned")
        await self._stores.user_admin.set_flag(user_id, "shadow_banned", banned)
        self._sessions.forget_user(user_id)  # cached requesters carry the flag

    async def set_suspended(self, user_id: str, suspended: bool) -> None:
        """Suspend (or reinstate) the account: it may read but not send, join, invite
        or change its profile (M_USER_SUSPENDED)."""
        await self.existing(user_id, "Can only suspend local users")
        await self._stores.user_admin.set_flag(user_id, "suspended", suspended)
        self._sessions.forget_user(user_id)  # cached requesters carry the flag

    # -- account moderation (client-server API v1.18: /_matrix/client/v1/admin/...) -----------

    async def moderated_account(self, user_id: str) -> AdminUserRow:
        """A local, active account whose suspension or lock an admin reads or sets:
        400 M_INVALID_PARAM for another server's user, 404 if unknown or deactivated."""
        self.check_local_or_remote(user_id)
        if user_id.partition(":")[2] != self._server_name:
            raise InvalidParam("The user ID does not belong to this server")
        row = await self._stores.user_admin.get_user(user_id)
        if row is None or row.deactivated:
            raise NotFound("User not found")
        return row

    async def moderate_account(
        self, requester_id: str, user_id: str, flag: str, value: bool
    ) -> None:
        """Suspend or lock (``flag``) another, non-admin account, or lift it."""
        row = await self.moderated_account(user_id)
        if user_id == requester_id:
            raise Forbidden("You may not suspend or lock your own account")
        if row.is_admin:
            raise Forbidden("You may not suspend or lock another server administrator")
        if flag == "suspended":
            await self.set_suspended(user_id, value)
        else:
            await self._stores.user_admin.set_flag(user_id, "locked", value)
            # cached requesters go: a locked account is logged out softly (M_USER_LOCKED)
            self._sessions.forget_user(user_id)

    async def ratelimit_override(self, user_id: str) -> tuple[int, int] | None:
        await self.existing(user_id)
        return await self._stores.user_admin.ratelimit_override(user_id)

    async def set_ratelimit_override(self, user_id: str, per_second: int, burst: int) -> None:
        await self.existing(user_id, "Only local users can be ratelimited")
        await self._stores.user_admin.set_ratelimit_override(user_id, per_second, burst)
        self._sessions.forget_user(user_id)

    async def delete_ratelimit_override(self, user_id: str) -> None:
        await self.existing(user_id, "Only local users can be ratelimited")
        await self._stores.user_admin.delete_ratelimit_override(user_id)
        self._sessions.forget_user(user_id)

    async def username_available(self, localpart: str) -> bool:
        if not await self._accounts.is_available(localpart):
            raise MatrixError(400, "M_USER_IN_USE", "User ID already taken.")
        return True

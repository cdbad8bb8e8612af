"""Profiles of local users: displayname, avatar_url, m.tz and custom namespaced fields."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from homeserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.events import InvalidIdentifier, UserID
from storage.database import Transaction
from storage.stores import Stores

PROFILE_KEY = re.compile(r"(avatar_url|displayname|m\.tz|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+)")
MAX_PROFILE_BYTES = 64 * 1024
MAX_KEY_BYTES = 255
MAX_DISPLAYNAME_LENGTH = 256
MAX_AVATAR_URL_LENGTH = 1000

# Called after a displayname or avatar change (e.g. to update room memberships).
ProfileChangeHook = Callable[[str, dict[str, Any]], Awaitable[None]]
# Reads the profile of a user of another server (federation installs one).
RemoteProfileLookup = Callable[[str], Awaitable[dict[str, Any]]]


class ProfileService:
    def __init__(self, server_name: str, stores: Stores) -> None:
        self._server_name = server_name
        self._stores = stores
        self.change_hooks: list[ProfileChangeHook] = []
        self.remote_lookup: RemoteProfileLookup | None = None

    def is_mine(self, user_id: str) -> bool:
        return user_id.partition(":")[2] == self._server_name

    async def get_profile(self, user_id: str) -> dict[str, Any]:
        """The whole profile; M_NOT_FOUND for unknown users, M_INVALID_PARAM for a
        string that is no user ID, or one with an empty localpart (non-compliant: the
        spec says not to hand such IDs to clients outside events)."""
        try:
            localpart = UserID.parse(user_id).localpart
        except InvalidIdentifier as exc:
            raise InvalidParam(f"Invalid user ID: {exc}") from exc
        if not localpart:
            raise InvalidParam("Invalid user ID: the localpart is empty")
        if not self.is_mine(user_id) and self.remote_lookup is not None:
            return await self.remote_lookup(user_id)
        row = await self._stores.db.fetchone(
            "get_full_profile",
            "SELECT p.displayname, p.avatar_url, p.extra FROM profiles p JOIN users u USING (user_id)"
            " WHERE p.user_id = $1 AND NOT u.deactivated",
            user_id,
        )
        if row is None:
            raise NotFound("Profile was not found")
        profile: dict[str, Any] = json.loads(row[2])
        if row[0] is not None:
            profile["displayname"] = row[0]
        if row[1] is not None:
            profile["avatar_url"] = row[1]
        return profile

    @staticmethod
    def check_key(key: str) -> None:
        if len(key.encode("utf-8")) > MAX_KEY_BYTES:
            raise MatrixError(400, "M_KEY_TOO_LARGE", "Profile key too long")
        if not PROFILE_KEY.fullmatch(key):
            raise InvalidParam("Invalid profile key.")

    async def set_field(
        self, requester_id: str, user_id: str, key: str, value: Any, *, any_uri: bool = False
    ) -> None:
        """Set one field of the requester's own profile. ``any_uri``: the avatar may be
        any URI, not only mxc:// (application services mirror remote avatars, and
        Synapse takes any string from them)."""
        self.check_key(key)
        if requester_id != user_id:
            raise Forbidden("Cannot set another user's profile")
        if key == "displayname":
            if not isinstance(value, str):
                raise BadJson("displayname must be a string")
            if len(value) > MAX_DISPLAYNAME_LENGTH:
                raise BadJson(f"displayname is longer than {MAX_DISPLAYNAME_LENGTH} characters")
        elif key == "avatar_url":
            if not isinstance(value, str):
                raise BadJson("avatar_url must be a string")
            if value and not value.startswith("mxc://") and not any_uri:
                raise BadJson("avatar_url must be an mxc:// URI string")
            if len(value) > MAX_AVATAR_URL_LENGTH:
                raise BadJson(f"avatar_url is longer than {MAX_AVATAR_URL_LENGTH} characters")
        elif key == "m.tz" and not isinstance(value, str):
            raise BadJson("m.tz must be a string")
        await self._write(user_id, key, value, delete=False)

    async def delete_field(self, requester_id: str, user_id: str, key: str) -> None:
        self.check_key(key)
        if requester_id != user_id:
            raise Forbidden("Cannot change another user's profile")
        await self._write(user_id, key, None, delete=True)

    async def _write(self, user_id: str, key: str, value: Any, *, delete: bool) -> None:
        async def txn_func(txn: Transaction) -> tuple[str | None, str | None]:
            row = await txn.fetchone(
                "SELECT displayname, avatar_url, extra FROM profiles WHERE user_id = $1", user_id
            )
            if row is None:
                raise NotFound("Profile was not found")
            displayname, avatar_url, extra = row[0], row[1], json.loads(row[2])
            if key == "displayname":
                displayname = None if delete else value
            elif key == "avatar_url":
                avatar_url = None if delete or value == "" else value
            elif delete:
                extra.pop(key, None)
            else:
                extra[key] = value
            encoded = json.dumps(extra, separators=(",", ":"))
            size = len(encoded) + len(json.dumps([displayname, avatar_url]))
            if size > MAX_PROFILE_BYTES:
                raise MatrixError(400, "M_PROFILE_TOO_LARGE", "Profile would exceed 64 KiB")
            await txn.execute(
                "UPDATE profiles SET displayname = $2, avatar_url = $3, extra = $4 WHERE user_id = $1",
                user_id,
                displayname,
                avatar_url,
                encoded,
            )
            return displayname, avatar_url

        displayname, avatar_url = await self._stores.db.run_transaction(
            "set_profile_field", txn_func
        )
        if key in ("displayname", "avatar_url"):
            changed = {"displayname": displayname, "avatar_url": avatar_url}
            for hook in self.change_hooks:
                await hook(user_id, changed)

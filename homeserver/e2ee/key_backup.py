"""Server-side room key backups: versions, and keys kept by the "better key" rules.

Spec: client-server "Server-side key backups" and the ``/room_keys/*`` endpoints.
Keys are written only to the latest version (else ``M_WRONG_ROOM_KEYS_VERSION``
with ``current_version``); every change of the stored keys bumps the version's
``etag``; a key replaces a stored one only if it is better: verified beats
unverified, then a lower ``first_message_index``, then a lower ``forwarded_count``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeserver.errors import InvalidParam, MatrixError, NotFound
from storage.database import IntegrityError, Transaction
from storage.key_backup import BackedUpKey, BackupVersion
from storage.stores import Stores


class WrongRoomKeysVersion(MatrixError):
    def __init__(self, current_version: str) -> None:
        super().__init__(
            403,
            "M_WRONG_ROOM_KEYS_VERSION",
            "Wrong backup version.",
            extra={"current_version": current_version},
        )


def is_better(new: BackedUpKey, old: BackedUpKey | None) -> bool:
    """Whether ``new`` should replace ``old`` (spec "Server-side key backups")."""
    if old is None:
        return True
    if new.is_verified != old.is_verified:
        return new.is_verified
    if new.first_message_index != old.first_message_index:
        return new.first_message_index < old.first_message_index
    return new.forwarded_count < old.forwarded_count


def parse_version(version: str) -> int | None:
    """Our versions are decimal integers; anything else names no backup."""
    if not version.isdigit() or len(version) > 18:
        return None
    return int(version)


class KeyBackupService:
    def __init__(self, stores: Stores) -> None:
        self._stores = stores

    # -- versions ---------------------------------------------------------------------

    async def create_version(self, user_id: str, algorithm: str, auth_data: Any) -> str:
        """The next version of the user's backups. Two creations at once may pick the
        same number; the one whose insert loses takes the next."""
        for _attempt in range(20):
            try:
                version = await self._stores.db.run_transaction(
                    "create_backup_version",
                    lambda txn: self._stores.key_backup.create_version_txn(
                        txn, user_id, algorithm, auth_data
                    ),
                )
            except IntegrityError:
                continue
            return str(version)
        raise IntegrityError(f"no free backup version for {user_id}")

    async def get_version_info(self, user_id: str, version: str | None) -> dict[str, Any]:
        """The latest version (``version`` None) or the named one; M_NOT_FOUND otherwise."""

        async def txn_func(txn: Transaction) -> dict[str, Any]:
            info = await self._live_version_txn(txn, user_id, version)
            count = await self._stores.key_backup.count_keys_txn(txn, user_id, info.version)
            return {
                "algorithm": info.algorithm,
                "auth_data": info.auth_data,
                "count": count,
                "etag": str(info.etag),
                "version": str(info.version),
            }

        return await self._stores.db.run_transaction(
            "get_backup_version_info", txn_func, readonly=True
        )

    async def update_version(
        self,
        user_id: str,
        version: str,
        algorithm: str,
        auth_data: Any,
        body_version: str | None,
    ) -> None:
        if body_version is not None and body_version != version:
            raise InvalidParam("The version in the body does not match the version in the path")

        async def txn_func(txn: Transaction) -> None:
            info = await self._live_version_txn(txn, user_id, version)
            if info.algorithm != algorithm:
                raise InvalidParam("Algorithm does not match")
            await self._stores.key_backup.update_auth_data_txn(
                txn, user_id, info.version, auth_data
            )

        await self._stores.db.run_transaction("update_backup_version", txn_func)

    async def delete_version(self, user_id: str, version: str) -> None:
        """Delete a version and its keys; deleting an already deleted one succeeds."""
        number = parse_version(version)

        async def txn_func(txn: Transaction) -> None:
            info = None
            if number is not None:
                info = await self._stores.key_backup.get_version_txn(txn, user_id, number)
            if info is None:
                raise NotFound("Unknown backup version")
            if not info.deleted:
                await self._stores.key_backup.delete_version_txn(txn, user_id, info.version)

        await self._stores.db.run_transaction("delete_backup_version", txn_func)

    async def _live_version_txn(
        self, txn: Transaction, user_id: str, version: str | None
    ) -> BackupVersion:
        number = None if version is None else parse_version(version)
        info = None
        if version is None or number is not None:
            info = await self._stores.key_backup.get_version_txn(txn, user_id, number)
        if info is None or info.deleted:
            raise NotFound(
                "No current backup version" if version is None else "Unknown backup version"
            )
        return info

    # -- keys -------------------------------------------------------------------------

    async def put_keys(
        self, user_id: str, version: str, keys: Mapping[str, Mapping[str, BackedUpKey]]
    ) -> dict[str, Any]:
        """Store ``room_id -> session_id -> key`` in the current version."""

        async def txn_func(txn: Transaction) -> dict[str, Any]:
            store = self._stores.key_backup
            current = await store.get_version_txn(txn, user_id, None)
            if current is None:
                raise NotFound("Unknown backup version")
            if parse_version(version) != current.version:
                raise WrongRoomKeysVersion(str(current.version))
            held = await store.get_keys_for_sessions_txn(txn, user_id, current.version, list(keys))
            changed = False
            for room_id, sessions in keys.items():
                for session_id, key in sessions.items():
                    if is_better(key, held.get((room_id, session_id))):
                        await store.put_key_txn(txn, user_id, current.version, key)
                        changed = True
            etag = current.etag
            if changed:
                etag = await store.bump_etag_txn(txn, user_id, current.version)
            count = await store.count_keys_txn(txn, user_id, current.version)
            return {"etag": str(etag), "count": count}

        return await self._stores.db.run_transaction("put_room_keys", txn_func)

    async def get_keys(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> list[BackedUpKey]:
        async def txn_func(txn: Transaction) -> list[BackedUpKey]:
            info = await self._live_version_txn(txn, user_id, version)
            return await self._stores.key_backup.get_keys_txn(
                txn, user_id, info.version, room_id, session_id
            )

        return await self._stores.db.run_transaction("get_room_keys", txn_func, readonly=True)

    async def delete_keys(
        self, user_id: str, version: str, room_id: str | None, session_id: str | None
    ) -> dict[str, Any]:
        async def txn_func(txn: Transaction) -> dict[str, Any]:
            store = self._stores.key_backup
            info = await self._live_version_txn(txn, user_id, version)
            deleted = await store.delete_keys_txn(txn, user_id, info.version, room_id, session_id)
            etag = info.etag
            if deleted:
                etag = await store.bump_etag_txn(txn, user_id, info.version)
            count = await store.count_keys_txn(txn, user_id, info.version)
            return {"etag": str(etag), "count": count}

        return await self._stores.db.run_transaction("delete_room_keys", txn_func)

"""Remote users' device lists and cross-signing keys, and inbound to-device message
IDs (schema/0012_remote_devices.sql).

Spec: server-server "Device Management", "End-to-End Encryption", "Send-to-device
messaging". The device list sequence this server sends (``prev_id`` of outbound
``m.device_list_update``) is read from ``device_lists_stream`` by
:meth:`RemoteDeviceStore.previous_device_change`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction


@dataclass(frozen=True)
class RemoteDeviceList:
    user_id: str
    stream_id: int
    stale: bool


@dataclass(frozen=True)
class RemoteDevice:
    device_id: str
    display_name: str | None
    keys: dict[str, Any] | None


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class RemoteDeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- reading the cache ------------------------------------------------------------

    async def get_list(self, user_id: str) -> RemoteDeviceList | None:
        row = await self.db.fetchone(
            "get_remote_device_list",
            "SELECT stream_id, stale FROM remote_device_lists WHERE user_id = $1",
            user_id,
        )
        return None if row is None else RemoteDeviceList(user_id, int(row[0]), bool(row[1]))

    async def get_devices(self, user_id: str) -> list[RemoteDevice]:
        rows = await self.db.fetchall(
            "get_remote_devices",
            "SELECT device_id, display_name, keys_json FROM remote_devices"
            " WHERE user_id = $1 ORDER BY device_id",
            user_id,
        )
        return [RemoteDevice(d, n, None if k is None else json.loads(k)) for d, n, k in rows]

    async def get_cross_signing_keys(self, user_id: str) -> dict[str, dict[str, Any]]:
        rows = await self.db.fetchall(
            "get_remote_cross_signing_keys",
            "SELECT key_type, key_json FROM remote_cross_signing_keys WHERE user_id = $1",
            user_id,
        )
        return {t: json.loads(k) for t, k in rows}

    # -- writing the cache ------------------------------------------------------------

    async def replace_user(
        self,
        user_id: str,
        stream_id: int,
        devices: Iterable[RemoteDevice],
        cross_signing: dict[str, dict[str, Any]],
        ts: int,
    ) -> None:
        await self.db.run_transaction(
            "replace_remote_device_list",
            lambda txn: self.replace_user_txn(txn, user_id, stream_id, devices, cross_signing, ts),
        )

    async def replace_user_txn(
        self,
        txn: Transaction,
        user_id: str,
        stream_id: int,
        devices: Iterable[RemoteDevice],
        cross_signing: dict[str, dict[str, Any]],
        ts: int,
    ) -> None:
        """A resync: the user's whole device list and cross-signing keys, fresh."""
        rows = [
            (user_id, d.device_id, d.display_name, None if d.keys is None else _dumps(d.keys))
            for d in devices
        ]
        await txn.execute("DELETE FROM remote_devices WHERE user_id = $1", user_id)
        await txn.executemany(
            "INSERT INTO remote_devices (user_id, device_id, display_name, keys_json)"
            " VALUES ($1, $2, $3, $4)",
            rows,
        )
        await txn.execute("DELETE FROM remote_cross_signing_keys WHERE user_id = $1", user_id)
        await self._set_cross_signing_txn(txn, user_id, cross_signing)
        await self._set_list_txn(txn, user_id, stream_id, ts)

    async def apply_update_txn(
        self,
        txn: Transaction,
        user_id: str,
        stream_id: int,
        device: RemoteDevice,
        deleted: bool,
        ts: int,
    ) -> None:
        """One ``m.device_list_update``: replace (or delete) one device, move to
        ``stream_id``."""
        await txn.execute(
            "DELETE FROM remote_devices WHERE user_id = $1 AND device_id = $2",
            user_id,
            device.device_id,
        )
        if not deleted:
            await txn.execute(
                "INSERT INTO remote_devices (user_id, device_id, display_name, keys_json)"
                " VALUES ($1, $2, $3, $4)",
                user_id,
                device.device_id,
                device.display_name,
                None if device.keys is None else _dumps(device.keys),
            )
        await self._set_list_txn(txn, user_id, stream_id, ts)

    async def set_cross_signing_keys(self, user_id: str, keys: dict[str, dict[str, Any]]) -> None:
        """An ``m.signing_key_update``: replace the given key types."""
        await self.db.run_transaction(
            "set_remote_cross_signing_keys",
            lambda txn: self._set_cross_signing_txn(txn, user_id, keys),
        )

    async def mark_stale(self, user_ids: Collection[str]) -> None:
        if not user_ids:
            return
        async with self.db.transaction("mark_remote_device_lists_stale") as txn:
            await txn.executemany(
                "UPDATE remote_device_lists SET stale = TRUE WHERE user_id = $1",
                [(u,) for u in user_ids],
            )

    async def _set_list_txn(self, txn: Transaction, user_id: str, stream_id: int, ts: int) -> None:
        await txn.execute(
            "INSERT INTO remote_device_lists (user_id, stream_id, stale, updated_ts)"
            " VALUES ($1, $2, FALSE, $3) ON CONFLICT (user_id) DO UPDATE SET"
            " stream_id = excluded.stream_id, stale = FALSE, updated_ts = excluded.updated_ts",
            user_id,
            stream_id,
            ts,
        )

    async def _set_cross_signing_txn(
        self, txn: Transaction, user_id: str, keys: dict[str, dict[str, Any]]
    ) -> None:
        await txn.executemany(
            "INSERT INTO remote_cross_signing_keys (user_id, key_type, key_json)"
            " VALUES ($1, $2, $3) ON CONFLICT (user_id, key_type)"
            " DO UPDATE SET key_json = excluded.key_json",
            [(user_id, key_type, _dumps(key)) for key_type, key in keys.items()],
        )

    # -- our own outbound sequence ----------------------------------------------------

    async def previous_device_change(self, user_id: str, before: int) -> int | None:
        """The position of a local user's latest device change before ``before``
        (the ``prev_id`` of the ``m.device_list_update`` at ``before``). Changes of
        cross-signing keys and their signatures (``device_id`` '') travel as
        ``m.signing_key_update`` and are no step of the sequence; nor are changes
        only one user sees."""
        value = await self.db.fetchval(
            "previous_device_change",
            "SELECT MAX(stream_id) FROM device_lists_stream WHERE user_id = $1"
            " AND stream_id < $2 AND only_for IS NULL AND device_id <> ''",
            user_id,
            before,
        )
        return None if value is None else int(value)

    # -- inbound to-device deduplication ----------------------------------------------

    async def claim_to_device_message(self, origin: str, message_id: str, ts: int) -> bool:
        """Record (origin, message_id); False when it was already recorded."""
        inserted = await self.db.execute(
            "claim_inbound_to_device",
            "INSERT INTO federation_inbound_to_device (origin, message_id, received_ts)"
            " VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
            origin,
            message_id,
            ts,
        )
        return inserted > 0

    async def release_to_device_message(self, origin: str, message_id: str) -> None:
        """Forget a message whose delivery failed, so a retry is delivered."""
        await self.db.execute(
            "release_inbound_to_device",
            "DELETE FROM federation_inbound_to_device WHERE origin = $1 AND message_id = $2",
            origin,
            message_id,
        )

    async def prune_to_device_messages(self, before_ts: int) -> int:
        return await self.db.execute(
            "prune_inbound_to_device",
            "DELETE FROM federation_inbound_to_device WHERE received_ts < $1",
            before_ts,
        )

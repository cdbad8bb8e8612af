"""End-to-end encryption keys: device keys, one-time and fallback keys, cross-signing
keys and signatures, and the device list stream (schema/0009_e2ee.sql).

Spec: client-server "End-to-End Encryption" (Key management API, Cross-signing).
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction

# How many candidates a claim looks at per round before re-reading (see claim).
_CLAIM_ROUNDS = 50


@dataclass(frozen=True)
class StoredDeviceKeys:
    device_id: str
    keys: dict[str, Any]
    display_name: str | None


@dataclass(frozen=True)
class StoredSignature:
    signer_user_id: str
    key_id: str
    target_user_id: str
    target_device_id: str
    signature: str


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class E2eKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- device keys ----------------------------------------------------------------

    async def get_device_keys_txn(
        self, txn: Transaction, user_id: str, device_id: str
    ) -> dict[str, Any] | None:
        raw = await txn.fetchval(
            "SELECT key_json FROM e2e_device_keys WHERE user_id = $1 AND device_id = $2",
            user_id,
            device_id,
        )
        return None if raw is None else dict(json.loads(raw))

    async def set_device_keys_txn(
        self, txn: Transaction, user_id: str, device_id: str, keys: dict[str, Any], ts: int
    ) -> None:
        await txn.execute(
            "INSERT INTO e2e_device_keys (user_id, device_id, key_json, ts) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (user_id, device_id) DO UPDATE SET key_json = excluded.key_json,"
            " ts = excluded.ts",
            user_id,
            device_id,
            _dumps(keys),
            ts,
        )

    async def get_user_device_keys(
        self, user_id: str, device_ids: Collection[str] = ()
    ) -> list[StoredDeviceKeys]:
        """The keys of the user's devices (all of them when ``device_ids`` is empty)."""
        rows = await self.db.fetchall(
            "get_user_device_keys",
            "SELECT k.device_id, k.key_json, d.display_name FROM e2e_device_keys k"
            " LEFT JOIN devices d ON d.user_id = k.user_id AND d.device_id = k.device_id"
            " WHERE k.user_id = $1 ORDER BY k.device_id",
            user_id,
        )
        wanted = set(device_ids)
        return [
            StoredDeviceKeys(device_id, json.loads(raw), name)
            for device_id, raw, name in rows
            if not wanted or device_id in wanted
        ]

    async def delete_device_keys_txn(
        self, txn: Transaction, user_id: str, device_ids: Collection[str]
    ) -> None:
        """Forget every key of the devices, and the signatures made over them."""
        for table in ("e2e_device_keys", "e2e_one_time_keys", "e2e_fallback_keys"):
            await txn.executemany(
                f"DELETE FROM {table} WHERE user_id = $1 AND device_id = $2",
                [(user_id, d) for d in device_ids],
            )
        await txn.executemany(
            "DELETE FROM e2e_cross_signing_signatures"
            " WHERE target_user_id = $1 AND target_device_id = $2",
            [(user_id, d) for d in device_ids],
        )

    # -- one-time keys ----------------------------------------------------------------

    async def get_one_time_keys_txn(
        self, txn: Transaction, user_id: str, device_id: str, key_ids: Collection[tuple[str, str]]
    ) -> dict[tuple[str, str], str]:
        """(algorithm, key_id) -> stored JSON text, for those of ``key_ids`` already held."""
        if not key_ids:
            return {}
        rows = await txn.fetchall(
            "SELECT algorithm, key_id, key_json FROM e2e_one_time_keys"
            " WHERE user_id = $1 AND device_id = $2",
            user_id,
            device_id,
        )
        wanted = set(key_ids)
        return {(a, k): j for a, k, j in rows if (a, k) in wanted}

    async def add_one_time_keys_txn(
        self,
        txn: Transaction,
        user_id: str,
        device_id: str,
        keys: Iterable[tuple[str, str, Any]],
        ts: int,
    ) -> None:
        await txn.executemany(
            "INSERT INTO e2e_one_time_keys (user_id, device_id, algorithm, key_id, key_json, ts)"
            " VALUES ($1, $2, $3, $4, $5, $6)",
            [(user_id, device_id, alg, key_id, _dumps(key), ts) for alg, key_id, key in keys],
        )

    async def count_one_time_keys_txn(
        self, txn: Transaction, user_id: str, device_id: str
    ) -> dict[str, int]:
        rows = await txn.fetchall(
            "SELECT algorithm, COUNT(*) FROM e2e_one_time_keys"
            " WHERE user_id = $1 AND device_id = $2 GROUP BY algorithm",
            user_id,
            device_id,
        )
        return {alg: int(n) for alg, n in rows}

    async def count_one_time_keys(self, user_id: str, device_id: str) -> dict[str, int]:
        async with self.db.transaction("count_one_time_keys", readonly=True) as txn:
            return await self.count_one_time_keys_txn(txn, user_id, device_id)

    async def claim_one_time_key_txn(
        self, txn: Transaction, user_id: str, device_id: str, algorithm: str
    ) -> tuple[str, Any] | None:
        """Delete and return the oldest unclaimed key, or None when there is none.

        The key is chosen by a read and taken by a DELETE whose row count says whether
        this transaction won it: on PostgreSQL a concurrent claim of the same row
        blocks on the row lock and then deletes nothing, so it moves on to the next
        key. SQLite serializes writers, so the first candidate always wins there.
        """
        for _ in range(_CLAIM_ROUNDS):
            rows = await txn.fetchall(
                "SELECT key_id, key_json FROM e2e_one_time_keys"
                " WHERE user_id = $1 AND device_id = $2 AND algorithm = $3"
                " ORDER BY ts, key_id LIMIT 10",
                user_id,
                device_id,
                algorithm,
            )
            if not rows:
                return None
            for key_id, raw in rows:
                taken = await txn.execute(
                    "DELETE FROM e2e_one_time_keys WHERE user_id = $1 AND device_id = $2"
                    " AND algorithm = $3 AND key_id = $4",
                    user_id,
                    device_id,
                    algorithm,
                    key_id,
                )
                if taken == 1:
                    return key_id, json.loads(raw)
        return None

    # -- fallback keys ----------------------------------------------------------------

    async def set_fallback_key_txn(
        self, txn: Transaction, user_id: str, device_id: str, algorithm: str, key_id: str, key: Any
    ) -> None:
        """Replace the device's fallback key of ``algorithm`` (re-uploading it keeps ``used``)."""
        await txn.execute(
            "INSERT INTO e2e_fallback_keys (user_id, device_id, algorithm, key_id, key_json, used)"
            " VALUES ($1, $2, $3, $4, $5, FALSE)"
            " ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET"
            " used = CASE WHEN e2e_fallback_keys.key_id = excluded.key_id"
            " AND e2e_fallback_keys.key_json = excluded.key_json"
            " THEN e2e_fallback_keys.used ELSE FALSE END,"
            " key_id = excluded.key_id, key_json = excluded.key_json",
            user_id,
            device_id,
            algorithm,
            key_id,
            _dumps(key),
        )

    async def claim_fallback_key_txn(
        self, txn: Transaction, user_id: str, device_id: str, algorithm: str
    ) -> tuple[str, Any] | None:
        row = await txn.fetchone(
            "SELECT key_id, key_json FROM e2e_fallback_keys"
            " WHERE user_id = $1 AND device_id = $2 AND algorithm = $3",
            user_id,
            device_id,
            algorithm,
        )
        if row is None:
            return None
        await txn.execute(
            "UPDATE e2e_fallback_keys SET used = TRUE"
            " WHERE user_id = $1 AND device_id = $2 AND algorithm = $3",
            user_id,
            device_id,
            algorithm,
        )
        return row[0], json.loads(row[1])

    async def unused_fallback_key_types(self, user_id: str, device_id: str) -> list[str]:
        rows = await self.db.fetchall(
            "unused_fallback_key_types",
            "SELECT algorithm FROM e2e_fallback_keys"
            " WHERE user_id = $1 AND device_id = $2 AND used = FALSE ORDER BY algorithm",
            user_id,
            device_id,
        )
        return [r[0] for r in rows]

    # -- cross-signing keys and signatures --------------------------------------------

    async def get_cross_signing_keys_txn(
        self, txn: Transaction, user_id: str
    ) -> dict[str, dict[str, Any]]:
        """key_type ('master', 'self_signing', 'user_signing') -> the key as uploaded."""
        rows = await txn.fetchall(
            "SELECT key_type, key_json FROM e2e_cross_signing_keys WHERE user_id = $1", user_id
        )
        return {t: json.loads(raw) for t, raw in rows}

    async def get_cross_signing_keys(self, user_id: str) -> dict[str, dict[str, Any]]:
        async with self.db.transaction("get_cross_signing_keys", readonly=True) as txn:
            return await self.get_cross_signing_keys_txn(txn, user_id)

    async def set_cross_signing_key_txn(
        self,
        txn: Transaction,
        user_id: str,
        key_type: str,
        public_key: str,
        key: dict[str, Any],
        stream_id: int,
    ) -> None:
        await txn.execute(
            "INSERT INTO e2e_cross_signing_keys (user_id, key_type, public_key, key_json, stream_id)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, key_type) DO UPDATE SET"
            " public_key = excluded.public_key, key_json = excluded.key_json,"
            " stream_id = excluded.stream_id",
            user_id,
            key_type,
            public_key,
            _dumps(key),
            stream_id,
        )

    async def delete_signatures_of_target_txn(
        self, txn: Transaction, target_user_id: str, target_device_id: str
    ) -> None:
        await txn.execute(
            "DELETE FROM e2e_cross_signing_signatures"
            " WHERE target_user_id = $1 AND target_device_id = $2",
            target_user_id,
            target_device_id,
        )

    async def add_signatures_txn(
        self, txn: Transaction, signatures: Collection[StoredSignature]
    ) -> None:
        await txn.executemany(
            "INSERT INTO e2e_cross_signing_signatures"
            " (user_id, key_id, target_user_id, target_device_id, signature)"
            " VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (user_id, key_id, target_user_id, target_device_id)"
            " DO UPDATE SET signature = excluded.signature",
            [
                (s.signer_user_id, s.key_id, s.target_user_id, s.target_device_id, s.signature)
                for s in signatures
            ],
        )

    async def get_signatures_for_user(self, target_user_id: str) -> list[StoredSignature]:
        """Every uploaded signature over a device or cross-signing key of the user."""
        rows = await self.db.fetchall(
            "get_signatures_for_user",
            "SELECT user_id, key_id, target_user_id, target_device_id, signature"
            " FROM e2e_cross_signing_signatures WHERE target_user_id = $1",
            target_user_id,
        )
        return [StoredSignature(*r) for r in rows]

    # -- the device list stream -------------------------------------------------------

    async def max_device_list_stream(self) -> int:
        value = await self.db.fetchval(
            "max_device_list_stream", "SELECT COALESCE(MAX(stream_id), 0) FROM device_lists_stream"
        )
        return int(value or 0)

    async def add_device_list_change_txn(
        self,
        txn: Transaction,
        stream_id: int,
        user_id: str,
        device_ids: Collection[str],
        only_for: str | None = None,
    ) -> None:
        await txn.executemany(
            "INSERT INTO device_lists_stream (stream_id, user_id, device_id, only_for)"
            " VALUES ($1, $2, $3, $4)",
            [(stream_id, user_id, d, only_for) for d in (device_ids or [""])],
        )

    async def users_with_device_changes(
        self, from_id: int, to_id: int, viewer: str
    ) -> tuple[set[str], set[str]]:
        """Users with a device list change in ``(from_id, to_id]``: (public changes,
        changes only ``viewer`` may see)."""
        if to_id <= from_id:
            return set(), set()
        rows = await self.db.fetchall(
            "users_with_device_changes",
            "SELECT DISTINCT user_id, only_for FROM device_lists_stream"
            " WHERE stream_id > $1 AND stream_id <= $2 AND (only_for IS NULL OR only_for = $3)",
            from_id,
            to_id,
            viewer,
        )
        return {u for u, o in rows if o is None}, {u for u, o in rows if o is not None}

    async def user_device_list_position(self, user_id: str) -> int:
        """The position of the user's latest device list change (0 when none)."""
        value = await self.db.fetchval(
            "user_device_list_position",
            "SELECT COALESCE(MAX(stream_id), 0) FROM device_lists_stream"
            " WHERE user_id = $1 AND only_for IS NULL",
            user_id,
        )
        return int(value or 0)

    async def membership_changes_between(
        self, room_ids: Collection[str], from_stream: int, to_stream: int
    ) -> list[tuple[str, str, str]]:
        """(room_id, user_id, membership) of membership events in the rooms with a
        stream position in ``(from_stream, to_stream]``, oldest first (for device
        list tracking: who started or stopped sharing a room)."""
        if not room_ids or to_stream <= from_stream:
            return []
        out: list[tuple[str, str, str]] = []
        async with self.db.transaction("membership_changes_between", readonly=True) as txn:
            for room_id in room_ids:
                rows = await txn.fetchall(
                    "SELECT room_id, user_id, membership FROM room_memberships"
                    " WHERE room_id = $1 AND stream_ordering > $2 AND stream_ordering <= $3"
                    " ORDER BY stream_ordering",
                    room_id,
                    from_stream,
                    to_stream,
                )
                out.extend((r[0], r[1], r[2]) for r in rows)
        return out

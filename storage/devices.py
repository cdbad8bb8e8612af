"""Devices of local users."""

from __future__ import annotations

from dataclasses import dataclass

from storage.database import Database, Transaction


@dataclass(frozen=True)
class DeviceRecord:
    user_id: str
    device_id: str
    display_name: str | None
    last_seen_ts: int | None
    last_seen_ip: str | None
    last_seen_user_agent: str | None = None


_COLUMNS = "user_id, device_id, display_name, last_seen_ts, last_seen_ip, last_seen_user_agent"


class DeviceStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def ensure_device_txn(
        self, txn: Transaction, user_id: str, device_id: str, display_name: str | None, ts: int
    ) -> bool:
        """Create the device if it does not exist; True when it was created."""
        changed = await txn.execute(
            "INSERT INTO devices (user_id, device_id, display_name, last_seen_ts)"
            " VALUES ($1, $2, $3, $4) ON CONFLICT (user_id, device_id) DO NOTHING",
            user_id,
            device_id,
            display_name,
            ts,
        )
        return changed > 0

    async def get_devices(self, user_id: str) -> list[DeviceRecord]:
        rows = await self.db.fetchall(
            "get_devices",
            f"SELECT {_COLUMNS} FROM devices WHERE user_id = $1 ORDER BY device_id",
            user_id,
        )
        return [DeviceRecord(*r) for r in rows]

    async def get_device(self, user_id: str, device_id: str) -> DeviceRecord | None:
        row = await self.db.fetchone(
            "get_device",
            f"SELECT {_COLUMNS} FROM devices WHERE user_id = $1 AND device_id = $2",
            user_id,
            device_id,
        )
        return None if row is None else DeviceRecord(*row)

    async def set_display_name(
        self, user_id: str, device_id: str, display_name: str | None
    ) -> bool:
        changed = await self.db.execute(
            "set_device_display_name",
            "UPDATE devices SET display_name = $3 WHERE user_id = $1 AND device_id = $2",
            user_id,
            device_id,
            display_name,
        )
        return changed > 0

    async def delete_devices_txn(
        self, txn: Transaction, user_id: str, device_ids: list[str]
    ) -> None:
        await txn.executemany(
            "DELETE FROM devices WHERE user_id = $1 AND device_id = $2",
            [(user_id, d) for d in device_ids],
        )
        await txn.executemany(
            "DELETE FROM user_ips WHERE user_id = $1 AND device_id = $2",
            [(user_id, d) for d in device_ids],
        )

    async def update_last_seen(
        self, user_id: str, device_id: str, ts: int, ip: str | None, user_agent: str = ""
    ) -> None:
        """The device was seen now from ``ip`` with ``user_agent`` (also kept per
        (IP, user agent) pair for the admin API's whois)."""

        async def txn_func(txn: Transaction) -> None:
            await txn.execute(
                "UPDATE devices SET last_seen_ts = $3, last_seen_ip = $4,"
                " last_seen_user_agent = $5 WHERE user_id = $1 AND device_id = $2",
                user_id,
                device_id,
                ts,
                ip,
                user_agent,
            )
            await txn.execute(
                "INSERT INTO user_ips (user_id, device_id, ip, user_agent, last_seen)"
                " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (user_id, device_id, ip, user_agent)"
                " DO UPDATE SET last_seen = excluded.last_seen",
                user_id,
                device_id,
                ip or "",
                user_agent,
                ts,
            )

        await self.db.run_transaction("update_device_last_seen", txn_func)

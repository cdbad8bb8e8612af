"""Other servers' signing keys and the key responses that listed them (schemas 0006,
0026).

Written by the key ring after a key response has been verified; read for request
authentication, event signature checks and notary answers. Responses are kept per
key: for each key ID the latest response that listed it, so a key a server no
longer lists can still be vouched for by a notary.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class StoredServerKey:
    server_name: str
    key_id: str
    verify_key: str  # unpadded base64
    valid_until_ts: int
    expired: bool
    fetched_ts: int
    from_server: str


@dataclass(frozen=True, slots=True)
class StoredKeyResponse:
    """A verified key response. As read back per key, ``valid_until_ts`` is that
    key's validity by the response (see :meth:`ServerKeyStore.get_responses`)."""

    server_name: str
    valid_until_ts: int
    fetched_ts: int
    from_server: str
    response: dict[str, Any]


_KEY_COLUMNS = "server_name, key_id, verify_key, valid_until_ts, expired, fetched_ts, from_server"
_RESPONSE_COLUMNS = "server_name, key_id, valid_until_ts, fetched_ts, from_server, response_json"


class ServerKeyStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get_keys(
        self, server_names: Collection[str]
    ) -> dict[str, dict[str, StoredServerKey]]:
        """Every stored key of each of ``server_names`` (expired ones too)."""
        result: dict[str, dict[str, StoredServerKey]] = {name: {} for name in server_names}
        if not server_names:
            return result
        names = sorted(result)
        placeholders = ", ".join(f"${i + 1}" for i in range(len(names)))
        rows = await self.db.fetchall(
            "get_server_keys",
            f"SELECT {_KEY_COLUMNS} FROM server_signing_keys WHERE server_name IN ({placeholders})",
            *names,
        )
        for row in rows:
            key = StoredServerKey(row[0], row[1], row[2], row[3], bool(row[4]), row[5], row[6])
            result[key.server_name][key.key_id] = key
        return result

    async def store_response(
        self, response: StoredKeyResponse | None, keys: Sequence[StoredServerKey]
    ) -> None:
        """Remember verified keys and, for each of them, the response that listed
        them, in one transaction. Older information never replaces newer."""

        async def txn_func(txn: Transaction) -> None:
            await self._store_keys_txn(txn, keys)
            if response is not None:
                await self._store_response_txn(txn, response, keys)

        await self.db.run_transaction("store_server_keys", txn_func)

    async def _store_keys_txn(self, txn: Transaction, keys: Sequence[StoredServerKey]) -> None:
        await txn.executemany(
            f"INSERT INTO server_signing_keys ({_KEY_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (server_name, key_id) DO UPDATE SET"
            " verify_key = excluded.verify_key, valid_until_ts = excluded.valid_until_ts,"
            " expired = excluded.expired, fetched_ts = excluded.fetched_ts,"
            " from_server = excluded.from_server"
            " WHERE excluded.fetched_ts >= server_signing_keys.fetched_ts",
            [
                (
                    k.server_name,
                    k.key_id,
                    k.verify_key,
                    k.valid_until_ts,
                    k.expired,
                    k.fetched_ts,
                    k.from_server,
                )
                for k in keys
            ],
        )

    async def _store_response_txn(
        self, txn: Transaction, response: StoredKeyResponse, keys: Sequence[StoredServerKey]
    ) -> None:
        response_json = json.dumps(response.response, separators=(",", ":"), ensure_ascii=False)
        await txn.executemany(
            f"INSERT INTO server_key_responses_by_key ({_RESPONSE_COLUMNS})"
            " VALUES ($1, $2, $3, $4, $5, $6)"
            " ON CONFLICT (server_name, key_id) DO UPDATE SET"
            " valid_until_ts = excluded.valid_until_ts, fetched_ts = excluded.fetched_ts,"
            " from_server = excluded.from_server, response_json = excluded.response_json"
            " WHERE excluded.fetched_ts >= server_key_responses_by_key.fetched_ts",
            [
                (
                    response.server_name,
                    key.key_id,
                    key.valid_until_ts,
                    response.fetched_ts,
                    response.from_server,
                    response_json,
                )
                for key in keys
                if key.server_name == response.server_name
            ],
        )

    async def get_responses(self, server_name: str) -> dict[str, StoredKeyResponse]:
        """Key ID -> the latest stored response of ``server_name`` that listed that
        key, its ``valid_until_ts`` being that key's validity by the response."""
        rows = await self.db.fetchall(
            "get_server_key_responses",
            f"SELECT {_RESPONSE_COLUMNS} FROM server_key_responses_by_key WHERE server_name = $1",
            server_name,
        )
        return {
            row[1]: StoredKeyResponse(row[0], row[2], row[3], row[4], json.loads(row[5]))
            for row in rows
        }

    async def get_response(self, server_name: str) -> StoredKeyResponse | None:
        """The latest key response stored for ``server_name``."""
        responses = await self.get_responses(server_name)
        return max(responses.values(), key=lambda r: r.fetched_ts, default=None)

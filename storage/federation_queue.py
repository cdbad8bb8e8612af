"""The outbound federation queue, destination health, and received transactions
(schema 0011; server-server API "Transactions").

Queue rows are ordered by an id allocated here (one writer process per queue); they
are deleted only once the transaction that carried them was answered with 200, so
a restart loses nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from storage.database import Database, Transaction


@dataclass(frozen=True, slots=True)
class QueuedPdu:
    id: int
    event_id: str
    stream_ordering: int | None


@dataclass(frozen=True, slots=True)
class QueuedEdu:
    id: int
    edu_type: str
    content: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DestinationHealth:
    """One row of ``GET /_synapse/admin/v1/federation/destinations``."""

    destination: str
    retry_last_ts: int
    retry_interval: int
    failure_ts: int | None
    last_successful_stream_ordering: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "destination": self.destination,
            "retry_last_ts": self.retry_last_ts,
            "retry_interval": self.retry_interval,
            "failure_ts": self.failure_ts,
            "last_successful_stream_ordering": self.last_successful_stream_ordering,
        }


class FederationQueueStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        # PDUs and EDUs share one ID order (what was queued first goes first)
        self._ids = db.id_generator(
            "federation_outbound_id_seq",
            "SELECT (SELECT MAX(id) FROM federation_outbound_pdus),"
            " (SELECT MAX(id) FROM federation_outbound_edus)",
        )

    # -- queueing ---------------------------------------------------------------------

    async def queue_pdu(
        self,
        destinations: Sequence[str],
        event_id: str,
        room_id: str,
        stream_ordering: int | None,
        now_ms: int,
    ) -> None:
        if not destinations:
            return
        async with self.db.transaction("queue_federation_pdu") as txn:
            ids = await self._ids.next_ids_txn(txn, len(destinations))
            await txn.executemany(
                "INSERT INTO federation_outbound_pdus"
                " (id, destination, event_id, room_id, stream_ordering, queued_ts)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                [
                    (new_id, dest, event_id, room_id, stream_ordering, now_ms)
                    for new_id, dest in zip(ids, destinations, strict=True)
                ],
            )
            if stream_ordering is not None:
                # the rooms each destination shares with us, as Synapse records them
                await txn.executemany(
                    "INSERT INTO federation_destination_rooms (destination, room_id,"
                    " stream_ordering) VALUES ($1, $2, $3) ON CONFLICT (destination, room_id)"
                    " DO UPDATE SET stream_ordering = excluded.stream_ordering",
                    [(dest, room_id, stream_ordering) for dest in destinations],
                )

    async def queue_edu(
        self,
        destination: str,
        edu_type: str,
        content: dict[str, Any],
        coalesce_key: str | None,
        now_ms: int,
    ) -> None:
        """Queue an EDU; a queued one with the same (type, key) is replaced."""
        async with self.db.transaction("queue_federation_edu") as txn:
            if coalesce_key is not None:
                await txn.execute(
                    "DELETE FROM federation_outbound_edus WHERE destination = $1"
                    " AND edu_type = $2 AND coalesce_key = $3",
                    destination,
                    edu_type,
                    coalesce_key,
                )
            new_id = await self._ids.next_id_txn(txn)
            await txn.execute(
                "INSERT INTO federation_outbound_edus"
                " (id, destination, edu_type, coalesce_key, content, queued_ts)"
                " VALUES ($1, $2, $3, $4, $5, $6)",
                new_id,
                destination,
                edu_type,
                coalesce_key,
                json.dumps(content, separators=(",", ":"), ensure_ascii=False),
                now_ms,
            )

    # -- draining ---------------------------------------------------------------------

    async def next_pdus(self, destination: str, limit: int) -> list[QueuedPdu]:
        rows = await self.db.fetchall(
            "next_federation_pdus",
            "SELECT id, event_id, stream_ordering FROM federation_outbound_pdus"
            " WHERE destination = $1 ORDER BY id LIMIT $2",
            destination,
            limit,
        )
        return [QueuedPdu(int(r[0]), r[1], None if r[2] is None else int(r[2])) for r in rows]

    async def next_edus(self, destination: str, limit: int) -> list[QueuedEdu]:
        rows = await self.db.fetchall(
            "next_federation_edus",
            "SELECT id, edu_type, content FROM federation_outbound_edus"
            " WHERE destination = $1 ORDER BY id LIMIT $2",
            destination,
            limit,
        )
        return [QueuedEdu(int(r[0]), r[1], json.loads(r[2])) for r in rows]

    async def remove_sent(
        self,
        destination: str,
        pdu_ids: Sequence[int],
        edu_ids: Sequence[int],
        last_stream_ordering: int | None,
    ) -> None:
        """Delete what a 200-answered transaction carried; mark the destination healthy."""
        async with self.db.transaction("remove_sent_federation") as txn:
            await txn.executemany(
                "DELETE FROM federation_outbound_pdus WHERE id = $1", [(i,) for i in pdu_ids]
            )
            await txn.executemany(
                "DELETE FROM federation_outbound_edus WHERE id = $1", [(i,) for i in edu_ids]
            )
            await self._upsert_health_txn(txn, destination, 0, 0, None, last_stream_ordering)

    async def pending_counts(self) -> dict[str, tuple[int, int]]:
        """Destination -> (queued PDUs, queued EDUs), for those with anything queued."""
        async with self.db.transaction("federation_queue_pending_counts", readonly=True) as txn:
            pdus = await txn.fetchall(
                "SELECT destination, COUNT(*) FROM federation_outbound_pdus GROUP BY destination"
            )
            edus = await txn.fetchall(
                "SELECT destination, COUNT(*) FROM federation_outbound_edus GROUP BY destination"
            )
        counts = {destination: (int(n), 0) for destination, n in pdus}
        for destination, n in edus:
            counts[destination] = (counts.get(destination, (0, 0))[0], int(n))
        return counts

    async def destinations_with_queue(self) -> list[str]:
        rows = await self.db.fetchall(
            "federation_pending_destinations",
            "SELECT destination FROM federation_outbound_pdus"
            " UNION SELECT destination FROM federation_outbound_edus",
        )
        return sorted(r[0] for r in rows)

    # -- destination health -----------------------------------------------------------

    async def _upsert_health_txn(
        self,
        txn: Transaction,
        destination: str,
        retry_last_ts: int,
        retry_interval: int,
        failure_ts: int | None,
        last_stream_ordering: int | None,
    ) -> None:
        await txn.execute(
            "INSERT INTO federation_destinations (destination, retry_last_ts, retry_interval,"
            " failure_ts, last_successful_stream_ordering) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (destination) DO UPDATE SET retry_last_ts = excluded.retry_last_ts,"
            " retry_interval = excluded.retry_interval, failure_ts = excluded.failure_ts,"
            " last_successful_stream_ordering = COALESCE("
            "excluded.last_successful_stream_ordering,"
            " federation_destinations.last_successful_stream_ordering)",
            destination,
            retry_last_ts,
            retry_interval,
            failure_ts,
            last_stream_ordering,
        )

    async def set_backoff(
        self, destination: str, retry_last_ts: int, retry_interval: int, failure_ts: int
    ) -> None:
        async with self.db.transaction("set_federation_backoff") as txn:
            await self._upsert_health_txn(
                txn, destination, retry_last_ts, retry_interval, failure_ts, None
            )

    async def clear_backoff(self, destination: str) -> None:
        async with self.db.transaction("clear_federation_backoff") as txn:
            await self._upsert_health_txn(txn, destination, 0, 0, None, None)

    async def get_health(self, destination: str) -> DestinationHealth | None:
        row = await self.db.fetchone(
            "get_destination_health",
            "SELECT destination, retry_last_ts, retry_interval, failure_ts,"
            " last_successful_stream_ordering FROM federation_destinations WHERE destination = $1",
            destination,
        )
        return None if row is None else _health(row)

    async def list_health(self, limit: int, offset: int) -> tuple[list[DestinationHealth], int]:
        rows = await self.db.fetchall(
            "list_destination_health",
            "SELECT destination, retry_last_ts, retry_interval, failure_ts,"
            " last_successful_stream_ordering FROM federation_destinations"
            " ORDER BY destination LIMIT $1 OFFSET $2",
            limit,
            offset,
        )
        total = await self.db.fetchval(
            "count_destinations", "SELECT COUNT(*) FROM federation_destinations"
        )
        return [_health(r) for r in rows], int(total or 0)

    async def is_known(self, destination: str) -> bool:
        """Whether this server ever queued anything for ``destination`` or tried it."""
        row = await self.db.fetchone(
            "is_destination_known",
            "SELECT 1 FROM federation_destinations WHERE destination = $1"
            " UNION ALL SELECT 1 FROM federation_destination_rooms WHERE destination = $1",
            destination,
        )
        return row is not None

    async def destination_rooms(
        self, destination: str, limit: int, offset: int, *, forwards: bool
    ) -> tuple[list[tuple[str, int]], int]:
        """A page of (room ID, stream ordering of the latest event queued there) of the
        rooms whose events went to ``destination``, by room ID; and how many in all."""
        order = "ASC" if forwards else "DESC"
        rows = await self.db.fetchall(
            "get_destination_rooms",
            "SELECT room_id, stream_ordering FROM federation_destination_rooms"
            f" WHERE destination = $1 ORDER BY room_id {order} LIMIT $2 OFFSET $3",
            destination,
            limit,
            offset,
        )
        total = await self.db.fetchval(
            "count_destination_rooms",
            "SELECT COUNT(*) FROM federation_destination_rooms WHERE destination = $1",
            destination,
        )
        return [(r[0], int(r[1])) for r in rows], int(total or 0)

    # -- received transactions ----------------------------------------------------------

    async def get_received_transaction(self, origin: str, txn_id: str) -> dict[str, Any] | None:
        raw = await self.db.fetchval(
            "get_received_transaction",
            "SELECT response_json FROM federation_received_transactions"
            " WHERE origin = $1 AND txn_id = $2",
            origin,
            txn_id,
        )
        return None if raw is None else dict(json.loads(raw))

    async def store_received_transaction(
        self, origin: str, txn_id: str, response: dict[str, Any], now_ms: int, keep_ms: int
    ) -> None:
        """Remember a transaction's answer and forget those older than ``keep_ms``."""
        async with self.db.transaction("store_received_transaction") as txn:
            await txn.execute(
                "INSERT INTO federation_received_transactions"
                " (origin, txn_id, response_json, received_ts) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (origin, txn_id) DO NOTHING",
                origin,
                txn_id,
                json.dumps(response, separators=(",", ":")),
                now_ms,
            )
            await txn.execute(
                "DELETE FROM federation_received_transactions WHERE received_ts < $1",
                now_ms - keep_ms,
            )


def _health(row: Any) -> DestinationHealth:
    return DestinationHealth(
        row[0],
        int(row[1]),
        int(row[2]),
        None if row[3] is None else int(row[3]),
        None if row[4] is None else int(row[4]),
    )

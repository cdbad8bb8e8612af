"""Deleting rooms and room history for good (Synapse admin API: delete room with
``purge``, ``purge_history``).

Every table that holds rows of a room is named here, keyed by room or by event:
:data:`ROOM_TABLES` are deleted by ``room_id``, :data:`EVENT_TABLES` by the IDs of
the room's events, ``state_group_entries`` by the room's state groups.
``blocked_rooms`` is kept on purpose (a blocked room stays blocked after it is gone).

The caches of the stores over these tables are dropped by the services that call
these purges (see ``homeserver/admin/purge.py``), after the transaction commits.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from storage.database import Database, Transaction
from storage.search import SearchStore
from storage.state import read_state_group_txn

# Tables with a room_id column, deleted by room (``rooms`` last).
ROOM_TABLES = (
    "current_state",
    "forward_extremities",
    "backward_extremities",
    "room_memberships",
    "forgotten_rooms",
    "room_aliases",
    "event_push_actions",
    "push_unread_counts",
    "push_read_positions",
    "receipts",
    "account_data",
    "e2e_room_keys",
    "federation_outbound_pdus",
    "appservice_room_list",
    "delayed_events",
    "federation_destination_rooms",
    "server_notice_rooms",
    "room_summaries",
    "user_directory_public_rooms",
    "events",
    "rooms",
)
# The search index (storage/search.py), whose full-text part the engine owns:
# deleted through the search store.
SEARCH_TABLES = ("event_search",)
# Tables keyed by the event ID of one of the room's events.
EVENT_TABLES = (
    ("event_edges", "event_id"),
    ("event_auth", "event_id"),
    ("invite_state", "event_id"),
    ("event_expiry", "event_id"),
    ("redactions_to_censor", "event_id"),
)
# Tables with a room_id column that a purge leaves alone, and why.
KEPT_ROOM_TABLES = {
    "blocked_rooms": "a blocked room stays blocked once purged",
    "event_reports": "reports stay for the admins who read them, as in Synapse",
    "room_reports": "reports stay for the admins who read them, as in Synapse",
}

_CHUNK = 500


def _marks(count: int, first: int = 1) -> str:
    return ", ".join(f"${first + i}" for i in range(count))


async def _delete_in_chunks(
    txn: Transaction, table: str, column: str, values: Collection[object]
) -> None:
    ordered = list(values)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        await txn.execute(f"DELETE FROM {table} WHERE {column} IN ({_marks(len(chunk))})", *chunk)


@dataclass
class RoomPurgeResult:
    """What a room purge removed (for the caches to forget)."""

    event_ids: list[str] = field(default_factory=list)
    state_groups: list[int] = field(default_factory=list)
    members: list[str] = field(default_factory=list)


@dataclass
class HistoryPurgeResult:
    """What a history purge did: events deleted, events kept out of the timeline
    (state and, unless asked, local events: made outliers), state groups deleted."""

    deleted: list[str] = field(default_factory=list)
    outliered: list[str] = field(default_factory=list)
    state_groups: list[int] = field(default_factory=list)
    # kept groups rewritten as full snapshots (their parents went)
    rewritten_groups: list[int] = field(default_factory=list)


class PurgeStore:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._search = SearchStore(db)

    # -- the whole room -----------------------------------------------------------------

    async def purge_room(self, room_id: str) -> RoomPurgeResult:
        """Delete every row of the room, in one transaction."""

        async def purge(txn: Transaction) -> RoomPurgeResult:
            return await self._purge_room_txn(txn, room_id)

        return await self.db.run_transaction("purge_room", purge)

    async def _purge_room_txn(self, txn: Transaction, room_id: str) -> RoomPurgeResult:
        result = RoomPurgeResult()
        rows = await txn.fetchall("SELECT event_id FROM events WHERE room_id = $1", room_id)
        result.event_ids = [r[0] for r in rows]
        rows = await txn.fetchall("SELECT id FROM state_groups WHERE room_id = $1", room_id)
        result.state_groups = [int(r[0]) for r in rows]
        rows = await txn.fetchall(
            "SELECT DISTINCT state_key FROM current_state WHERE room_id = $1"
            " AND type = 'm.room.member'",
            room_id,
        )
        result.members = [r[0] for r in rows]
        for table, column in EVENT_TABLES:
            await _delete_in_chunks(txn, table, column, result.event_ids)
        await _delete_in_chunks(txn, "state_group_entries", "state_group", result.state_groups)
        await txn.execute("DELETE FROM state_groups WHERE room_id = $1", room_id)
        await self._search.remove_room_txn(txn, room_id)
        for table in ROOM_TABLES:
            await txn.execute(f"DELETE FROM {table} WHERE room_id = $1", room_id)
        return result

    # -- history before a point ------------------------------------------------------------

    async def purge_history(
        self, room_id: str, depth: int, server_name: str, *, delete_local_events: bool
    ) -> HistoryPurgeResult:
        """Remove the room's history before ``depth`` (as Synapse's purge_history).

        Events before that depth are taken out of the timeline: non-state events
        (of remote senders only, unless ``delete_local_events``) are deleted with
        their edges, auth links, memberships, push actions, queued federation sends
        and expiry; the others (state events, which later state still cites, and
        kept local events) become outliers, with no stream position or state group
        (as events known only as auth or state are held, so backfill can bring them
        back into the timeline). Backward extremities are recomputed so the purged
        part can be backfilled again from other servers. State groups no remaining
        event refers to are deleted (see :meth:`_prune_state_groups_txn`). The
        current state is untouched; unread counts are recounted from the push
        actions left.
        """

        async def purge(txn: Transaction) -> HistoryPurgeResult:
            return await self._purge_history_txn(
                txn, room_id, depth, server_name, delete_local_events
            )

        return await self.db.run_transaction("purge_history", purge)

    async def _purge_history_txn(
        self,
        txn: Transaction,
        room_id: str,
        depth: int,
        server_name: str,
        delete_local_events: bool,
    ) -> HistoryPurgeResult:
        result = HistoryPurgeResult()
        rows = await txn.fetchall(
            "SELECT event_id, state_key, sender, outlier FROM events"
            " WHERE room_id = $1 AND depth < $2",
            room_id,
            depth,
        )
        suffix = ":" + server_name
        for event_id, state_key, sender, outlier in rows:
            deletable = state_key is None and (delete_local_events or not sender.endswith(suffix))
            if deletable:
                result.deleted.append(event_id)
            elif not outlier:
                result.outliered.append(event_id)
        purged = set(result.deleted) | set(result.outliered)
        if not purged:
            return result

        for table, column in EVENT_TABLES:
            await _delete_in_chunks(txn, table, column, result.deleted)
        await _delete_in_chunks(txn, "events", "event_id", result.deleted)
        await _delete_in_chunks(txn, "room_memberships", "event_id", result.deleted)
        # Push actions and search rows of every event leaving the timeline: none
        # notifies or is found any more.
        leaving = sorted(purged)
        await self._search.remove_events_txn(txn, room_id, leaving)
        for start in range(0, len(leaving), _CHUNK):
            chunk = leaving[start : start + _CHUNK]
            await txn.execute(
                f"DELETE FROM event_push_actions WHERE room_id = $1"
                f" AND event_id IN ({_marks(len(chunk), 2)})",
                room_id,
                *chunk,
            )
        await _delete_in_chunks(txn, "federation_outbound_pdus", "event_id", result.deleted)
        for start in range(0, len(result.outliered), _CHUNK):
            chunk = result.outliered[start : start + _CHUNK]
            await txn.execute(
                "UPDATE events SET outlier = TRUE, state_group = NULL, stream_ordering = NULL"
                f" WHERE event_id IN ({_marks(len(chunk))})",
                *chunk,
            )
        # Backward extremities, afresh: what timeline events cite that is not in the
        # timeline (never received, or purged just now), where backfill may start.
        await txn.execute("DELETE FROM backward_extremities WHERE room_id = $1", room_id)
        await txn.execute(
            "INSERT INTO backward_extremities (room_id, event_id, depth)"
            " SELECT e.room_id, ed.prev_event_id, MAX(e.depth)"
            " FROM events e JOIN event_edges ed ON ed.event_id = e.event_id"
            " WHERE e.room_id = $1 AND NOT e.outlier AND NOT EXISTS ("
            "  SELECT 1 FROM events p WHERE p.event_id = ed.prev_event_id AND NOT p.outlier)"
            " GROUP BY e.room_id, ed.prev_event_id",
            room_id,
        )
        await self._prune_state_groups_txn(txn, room_id, result)
        await self._recount_unread_txn(txn, room_id)
        return result

    async def _prune_state_groups_txn(
        self, txn: Transaction, room_id: str, result: HistoryPurgeResult
    ) -> None:
        """Delete the room's state groups that no remaining event refers to.

        Groups are deltas over a parent, so a group an event needs keeps its chain of
        parents. A needed group whose parent no event needs any more is rewritten as a
        full snapshot first; then the groups no event refers to hold nothing anyone
        needs, and go.
        """
        rows = await txn.fetchall(
            "SELECT id, prev_group FROM state_groups WHERE room_id = $1", room_id
        )
        parents = {int(g): (None if p is None else int(p)) for g, p in rows}
        rows = await txn.fetchall(
            "SELECT DISTINCT state_group FROM events WHERE room_id = $1"
            " AND state_group IS NOT NULL",
            room_id,
        )
        referenced = {int(r[0]) for r in rows}
        for group in sorted(referenced):
            parent = parents.get(group)
            if parent is None or parent in referenced:
                continue
            state = await read_state_group_txn(txn, group)
            await txn.execute("DELETE FROM state_group_entries WHERE state_group = $1", group)
            await txn.executemany(
                "INSERT INTO state_group_entries (state_group, type, state_key, event_id)"
                " VALUES ($1, $2, $3, $4)",
                [(group, t, k, e) for (t, k), e in state.items()],
            )
            await txn.execute(
                "UPDATE state_groups SET prev_group = NULL, chain_length = 0, chain_entries = 0"
                " WHERE id = $1",
                group,
            )
            result.rewritten_groups.append(group)
        result.state_groups = sorted(g for g in parents if g not in referenced)
        await _delete_in_chunks(txn, "state_group_entries", "state_group", result.state_groups)
        await _delete_in_chunks(txn, "state_groups", "id", result.state_groups)

    async def _recount_unread_txn(self, txn: Transaction, room_id: str) -> None:
        """Unread counts of the room's members from the push actions left (as migration
        0015 computed them), after some were deleted."""
        await txn.execute("DELETE FROM push_unread_counts WHERE room_id = $1", room_id)
        await txn.execute(
            "INSERT INTO push_unread_counts (room_id, user_id, thread_id, notifications, highlights)"
            " SELECT a.room_id, a.user_id, a.thread_id, COUNT(*),"
            " SUM(CASE WHEN a.highlight THEN 1 ELSE 0 END)"
            " FROM event_push_actions a"
            " LEFT JOIN push_read_positions u ON u.user_id = a.user_id AND u.room_id = a.room_id"
            " AND u.thread_id = ''"
            " LEFT JOIN push_read_positions t ON t.user_id = a.user_id AND t.room_id = a.room_id"
            " AND t.thread_id = a.thread_id"
            " WHERE a.room_id = $1 AND a.stream_ordering > COALESCE(u.stream_ordering, 0)"
            " AND a.stream_ordering > COALESCE(t.stream_ordering, 0)"
            " GROUP BY a.room_id, a.user_id, a.thread_id",
            room_id,
        )

"""Events of rooms: the PDUs, their DAG edges, stream positions and forward extremities."""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from homeserver.events import KNOWN_ROOM_VERSIONS, Event
from homeserver.events.json_codec import dumps_text, loads
from storage.cache_stats import CacheStats
from storage.database import Database, Transaction

_EVENT_COLUMNS = (
    "event_id, room_id, stream_ordering, depth, json, outlier, rejected_reason,"
    " soft_failed, state_group, redacted_by, replaces_state, txn_device_id, txn_id"
)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event as this server holds it, with its local metadata."""

    event: Event
    stream_ordering: int | None
    outlier: bool
    rejected_reason: str | None
    soft_failed: bool
    state_group: int | None
    redacted_by: str | None
    replaces_state: str | None = None
    txn_device_id: str | None = None
    txn_id: str | None = None

    @property
    def event_id(self) -> str:
        return self.event.event_id

    @property
    def depth(self) -> int:
        return self.event.depth


def _relation(event: Event) -> tuple[str | None, str | None]:
    relates = event.content.get("m.relates_to")
    if not isinstance(relates, dict):
        return None, None
    target, rel_type = relates.get("event_id"), relates.get("rel_type")
    if isinstance(target, str) and isinstance(rel_type, str):
        return target, rel_type
    return None, None


class EventStore:
    def __init__(self, db: Database, cache_size: int = 10_000) -> None:
        self.db = db
        self._cache: OrderedDict[str, StoredEvent] = OrderedDict()
        self._cache_size = cache_size
        self.cache_stats = CacheStats("*getEvent*", lambda: len(self._cache), cache_size)
        self._room_versions: dict[str, str] = {}
        # room -> forward extremities, kept in step with committed writes
        self._extremities: dict[str, list[str]] = {}
        # moves whenever a cached event is dropped because it changed
        self._epoch = 0

    # -- positions ---------------------------------------------------------------

    async def max_stream_ordering(self) -> int:
        value = await self.db.fetchval("max_stream", "SELECT MAX(stream_ordering) FROM events")
        return int(value or 0)

    async def min_stream_ordering(self) -> int:
        value = await self.db.fetchval("min_stream", "SELECT MIN(stream_ordering) FROM events")
        return min(int(value or 0), 0)

    async def min_depth(self, room_id: str) -> int:
        """The smallest depth of the room's events in the timeline (0 without any)."""
        value = await self.db.fetchval(
            "room_min_depth",
            "SELECT MIN(depth) FROM events WHERE room_id = $1 AND stream_ordering IS NOT NULL",
            room_id,
        )
        return int(value or 0)

    # -- writing -----------------------------------------------------------------

    async def insert_event_txn(
        self,
        txn: Transaction,
        event: Event,
        *,
        stream_ordering: int | None,
        received_ts: int,
        state_group: int | None,
        outlier: bool = False,
        rejected_reason: str | None = None,
        soft_failed: bool = False,
        txn_device_id: str | None = None,
        txn_id: str | None = None,
        replaces_state: str | None = None,
    ) -> StoredEvent:
        stored = StoredEvent(
            event,
            stream_ordering,
            outlier,
            rejected_reason,
            soft_failed,
            state_group,
            None,
            replaces_state,
            txn_device_id,
            txn_id,
        )
        await self._insert_txn(txn, [stored], received_ts)
        txn.call_after_commit(lambda: self._remember(stored))
        return stored

    async def _insert_txn(
        self, txn: Transaction, events: Sequence[StoredEvent], received_ts: int
    ) -> None:
        """The rows of new events, their edges and auth events (one statement each)."""
        rows = []
        edges = []
        auth = []
        for stored in events:
            event = stored.event
            relates_to, rel_type = _relation(event)
            rows.append(
                (
                    event.event_id,
                    event.room_id,
                    stored.stream_ordering,
                    event.depth,
                    event.type,
                    event.state_key,
                    event.sender,
                    event.origin_server_ts,
                    received_ts,
                    dumps_text(event.pdu),
                    stored.outlier,
                    stored.rejected_reason,
                    stored.soft_failed,
                    stored.state_group,
                    relates_to,
                    rel_type,
                    stored.txn_device_id,
                    stored.txn_id,
                    event.redacts,
                    stored.replaces_state,
                )
            )
            edges += [(event.event_id, p) for p in dict.fromkeys(event.prev_event_ids)]
            auth += [(event.event_id, a) for a in dict.fromkeys(event.auth_event_ids)]
        await txn.executemany(
            "INSERT INTO events (event_id, room_id, stream_ordering, depth, type, state_key,"
            " sender, origin_server_ts, received_ts, json, outlier, rejected_reason,"
            " soft_failed, state_group, relates_to_id, rel_type, txn_device_id, txn_id, redacts,"
            " replaces_state)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17,"
            " $18, $19, $20)",
            rows,
        )
        await txn.executemany(
            "INSERT INTO event_edges (event_id, prev_event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            edges,
        )
        await txn.executemany(
            "INSERT INTO event_auth (event_id, auth_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            auth,
        )

    async def insert_outliers_txn(
        self,
        txn: Transaction,
        events: Sequence[tuple[Event, str | None]],
        *,
        received_ts: int,
    ) -> list[StoredEvent]:
        """Insert a batch of outliers, each with its rejection reason (None:
        accepted), with one statement per table (``executemany``).

        Outliers have no stream position and no state group; the caller puts the
        batch in an order where every event follows the events it cites.
        """
        stored = [
            StoredEvent(event, None, True, rejected_reason, False, None, None)
            for event, rejected_reason in events
        ]
        await self._insert_txn(txn, stored, received_ts)

        def remember() -> None:
            for one in stored:
                self._remember(one)

        txn.call_after_commit(remember)
        return stored

    async def de_outlier_txn(
        self, txn: Transaction, event_id: str, stream_ordering: int, state_group: int | None
    ) -> None:
        """An outlier becomes part of the timeline (its state is now known)."""
        await txn.queue(
            "UPDATE events SET outlier = FALSE, stream_ordering = $2, state_group = $3"
            " WHERE event_id = $1",
            event_id,
            stream_ordering,
            state_group,
        )
        txn.call_after_commit(lambda: self._forget(event_id))

    async def store_pruned_txn(
        self, txn: Transaction, event_id: str, pruned_pdu: dict[str, Any]
    ) -> None:
        """Keep only the pruned form of an event (its content is gone for good: an
        expired self-destructing message)."""
        await txn.queue(
            "UPDATE events SET json = $2 WHERE event_id = $1",
            event_id,
            json.dumps(pruned_pdu, separators=(",", ":"), ensure_ascii=False),
        )
        txn.call_after_commit(lambda: self._forget(event_id))

    async def set_redacted_by_txn(
        self, txn: Transaction, event_id: str, redaction_id: str, redacted_ts: int
    ) -> None:
        """Mark ``event_id`` redacted by ``redaction_id`` (the first redaction counts),
        and queue its original JSON for censoring (``redaction_retention_period``)."""
        await txn.queue(
            "UPDATE events SET redacted_by = $2 WHERE event_id = $1 AND redacted_by IS NULL",
            event_id,
            redaction_id,
        )
        await txn.queue(
            "INSERT INTO redactions_to_censor (event_id, redacted_ts) VALUES ($1, $2)"
            " ON CONFLICT (event_id) DO NOTHING",
            event_id,
            redacted_ts,
        )
        txn.call_after_commit(lambda: self._forget(event_id))

    async def redactions_due_for_censoring(self, before_ts: int, limit: int) -> list[str]:
        """Redacted events whose redaction took effect before ``before_ts`` and whose
        original JSON is still stored, oldest first."""
        rows = await self.db.fetchall(
            "redactions_due_for_censoring",
            "SELECT event_id FROM redactions_to_censor WHERE redacted_ts < $1"
            " ORDER BY redacted_ts LIMIT $2",
            before_ts,
            limit,
        )
        return [row[0] for row in rows]

    async def censored_txn(self, txn: Transaction, event_id: str) -> None:
        """``event_id``'s original JSON is gone: nothing left to censor."""
        await txn.queue("DELETE FROM redactions_to_censor WHERE event_id = $1", event_id)

    async def redactions_of_txn(self, txn: Transaction, event_id: str) -> list[str]:
        """Accepted redactions already stored that target ``event_id``."""
        rows = await txn.fetchall(
            "SELECT event_id FROM events WHERE redacts = $1 AND rejected_reason IS NULL"
            " AND NOT soft_failed",
            event_id,
        )
        return [r[0] for r in rows]

    async def redactions_of_many_txn(
        self, txn: Transaction, event_ids: Sequence[str]
    ) -> dict[str, list[str]]:
        """:meth:`redactions_of_txn` for many events: target -> its redactions (only
        targets that have some)."""
        found: dict[str, list[str]] = {}
        for start in range(0, len(event_ids), 500):
            chunk = event_ids[start : start + 500]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            rows = await txn.fetchall(
                f"SELECT redacts, event_id FROM events WHERE redacts IN ({marks})"
                " AND rejected_reason IS NULL AND NOT soft_failed",
                *chunk,
            )
            for target, redaction_id in rows:
                found.setdefault(target, []).append(redaction_id)
        return found

    async def get_forward_extremities_txn(self, txn: Transaction, room_id: str) -> list[str]:
        cached = self._extremities.get(room_id)
        if cached is not None:
            return list(cached)
        rows = await txn.fetchall(
            "SELECT event_id FROM forward_extremities WHERE room_id = $1", room_id
        )
        return [r[0] for r in rows]

    async def is_referenced_txn(self, txn: Transaction, event_id: str) -> bool:
        """True when an event we hold already cites ``event_id`` as a prev_event."""
        row = await txn.fetchone(
            "SELECT 1 FROM event_edges e JOIN events v ON v.event_id = e.event_id"
            " WHERE e.prev_event_id = $1 AND NOT v.outlier LIMIT 1",
            event_id,
        )
        return row is not None

    async def update_backward_extremities_txn(self, txn: Transaction, event: Event) -> None:
        """``event`` joins the timeline: it stops being a backward extremity, and the
        prev events it cites that are not in the timeline become ones."""
        await txn.queue(
            "DELETE FROM backward_extremities WHERE room_id = $1 AND event_id = $2",
            event.room_id,
            event.event_id,
        )
        prevs = list(dict.fromkeys(event.prev_event_ids))
        if not prevs:
            return
        marks = ", ".join(f"${i}" for i in range(1, len(prevs) + 1))
        rows = await txn.fetchall(
            f"SELECT event_id FROM events WHERE event_id IN ({marks}) AND NOT outlier", *prevs
        )
        held = {r[0] for r in rows}
        await txn.executemany(
            "INSERT INTO backward_extremities (room_id, event_id, depth) VALUES ($1, $2, $3)"
            " ON CONFLICT (room_id, event_id) DO UPDATE SET depth = excluded.depth"
            " WHERE backward_extremities.depth < excluded.depth",
            [(event.room_id, p, event.depth) for p in prevs if p not in held],
        )

    async def backward_extremities(
        self, room_id: str, min_depth: int, max_depth: int, limit: int
    ) -> list[tuple[str, int]]:
        """(event ID, depth) of the room's backward extremities cited at depths in
        ``[min_depth, max_depth]``, deepest first."""
        rows = await self.db.fetchall(
            "backward_extremities",
            "SELECT event_id, depth FROM backward_extremities"
            " WHERE room_id = $1 AND depth >= $2 AND depth <= $3"
            " ORDER BY depth DESC, event_id LIMIT $4",
            room_id,
            min_depth,
            max_depth,
            limit,
        )
        return [(r[0], int(r[1])) for r in rows]

    async def set_forward_extremities_txn(
        self,
        txn: Transaction,
        room_id: str,
        remove: Iterable[str],
        add: Iterable[str],
        result: Iterable[str] | None = None,
    ) -> None:
        """Move the room's forward extremities; ``result`` is the full set afterwards."""
        await txn.executemany(
            "DELETE FROM forward_extremities WHERE room_id = $1 AND event_id = $2",
            [(room_id, e) for e in remove],
        )
        await txn.executemany(
            "INSERT INTO forward_extremities (room_id, event_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(room_id, e) for e in add],
        )
        # Writes to a room are serialized by its lane: the cache follows the commit
        # (and only the commit path fills it, so no reader can plant a stale value).
        self._extremities.pop(room_id, None)
        if result is not None:
            final = list(result)
            txn.call_after_commit(lambda: self._extremities.__setitem__(room_id, final))

    # -- reading -----------------------------------------------------------------

    def _remember(self, stored: StoredEvent) -> None:
        stored.event.release_derived()
        self._cache[stored.event_id] = stored
        self._cache.move_to_end(stored.event_id)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
            self.cache_stats.evictions += 1

    def _forget(self, event_id: str) -> None:
        self._cache.pop(event_id, None)
        self._epoch += 1

    def invalidate_event(self, event_id: str) -> None:
        """Another process changed the event (redacted, pruned, de-outliered)."""
        self._forget(event_id)

    def invalidate_if_cached(self, event_id: str) -> None:
        """Another process committed the event: drop a copy held from before (an
        outlier it de-outliered). Reads in flight are not disturbed: a new event's ID
        is seldom being read already, so this stays free on the hot path."""
        if self._cache.pop(event_id, None) is not None:
            self._epoch += 1

    def invalidate_room(self, room_id: str) -> None:
        """Another process wrote an event of the room: its forward extremities moved."""
        self._extremities.pop(room_id, None)

    def clear_caches(self) -> None:
        """Notices from the other processes may have been missed: drop every cached
        event and every room's extremities (room versions never change: kept)."""
        self._cache.clear()
        self._epoch += 1
        self._extremities.clear()

    def invalidate_purged_room(self, room_id: str) -> None:
        """Another process purged the room's history (or the whole room): drop every
        cached event of the room, its version and its extremities."""
        for event_id in [e for e, s in self._cache.items() if s.event.room_id == room_id]:
            del self._cache[event_id]
        self._epoch += 1
        self._room_versions.pop(room_id, None)
        self._extremities.pop(room_id, None)

    def forget_purged(self, room_id: str, event_ids: Iterable[str], *, whole_room: bool) -> None:
        """Drop what is cached of events deleted or changed by a purge (and of the room
        itself when it is gone)."""
        for event_id in event_ids:
            self._cache.pop(event_id, None)
        if whole_room:
            self._room_versions.pop(room_id, None)
            self._extremities.pop(room_id, None)

    def remember_room_version(self, room_id: str, version: str) -> None:
        self._room_versions[room_id] = version

    async def room_version_id(self, room_id: str) -> str | None:
        version = self._room_versions.get(room_id)
        if version is None:
            version = await self.db.fetchval(
                "get_room_version", "SELECT room_version FROM rooms WHERE room_id = $1", room_id
            )
            if version is not None:
                self._room_versions[room_id] = version
        return version

    def _from_row(self, row: tuple[Any, ...], room_version: str) -> StoredEvent:
        (event_id, _room, stream, _depth, raw, outlier, rejected, soft, group, redacted_by) = row[
            :10
        ]
        event = Event(loads(raw), KNOWN_ROOM_VERSIONS[room_version], event_id=event_id)
        return StoredEvent(
            event,
            None if stream is None else int(stream),
            bool(outlier),
            rejected,
            bool(soft),
            None if group is None else int(group),
            redacted_by,
            row[10],
            row[11],
            row[12],
        )

    async def _rows_to_events(self, rows: list[tuple[Any, ...]], epoch: int) -> list[StoredEvent]:
        """The events of ``rows``, cached unless an event was invalidated since
        ``epoch`` (``self._epoch`` read before the rows were)."""
        result: list[StoredEvent] = []
        for row in rows:
            version = await self.room_version_id(row[1])
            if version is None or version not in KNOWN_ROOM_VERSIONS:
                continue
            stored = self._from_row(row, version)
            if self._epoch == epoch:
                self._remember(stored)
            result.append(stored)
        return result

    async def get_events(self, event_ids: Collection[str]) -> dict[str, StoredEvent]:
        """The events we hold among ``event_ids`` (cached)."""
        found: dict[str, StoredEvent] = {}
        missing: list[str] = []
        for event_id in event_ids:
            cached = self._cache.get(event_id)
            if cached is not None:
                found[event_id] = cached
            else:
                missing.append(event_id)
        self.cache_stats.hits += len(found)
        self.cache_stats.misses += len(missing)
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            epoch = self._epoch  # (a read racing an invalidation is not cached)
            rows = await self.db.fetchall(
                "get_events",
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE event_id IN ({marks})",
                *chunk,
            )
            for stored in await self._rows_to_events(rows, epoch):
                found[stored.event_id] = stored
        return found

    async def get_event(self, event_id: str) -> StoredEvent | None:
        return (await self.get_events([event_id])).get(event_id)

    async def get_pdu_json(self, event_ids: Collection[str]) -> dict[str, tuple[int, str]]:
        """The stored PDU JSON (with the depth) of the events we hold among
        ``event_ids``, unparsed: to be sent on as it is (a room's whole state)."""
        found: dict[str, tuple[int, str]] = {}
        wanted = list(event_ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "get_pdu_json",
                f"SELECT event_id, depth, json FROM events WHERE event_id IN ({marks})",
                *chunk,
            )
            for event_id, depth, raw in rows:
                found[event_id] = (int(depth), raw)
        return found

    async def auth_event_ids_of(self, event_ids: Collection[str]) -> set[str]:
        """The auth events the held events among ``event_ids`` cite (all of them)."""
        found: set[str] = set()
        wanted = list(event_ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join(f"${i + 1}" for i in range(len(chunk)))
            rows = await self.db.fetchall(
                "auth_event_ids_of",
                f"SELECT DISTINCT auth_id FROM event_auth WHERE event_id IN ({marks})",
                *chunk,
            )
            found.update(auth_id for (auth_id,) in rows)
        return found

    async def auth_chain_ids(self, event_ids: Collection[str]) -> set[str]:
        """``event_ids`` and the auth events they cite, recursively, as far as we hold
        them (without reading the events themselves)."""
        chain = set(event_ids)
        todo = set(chain)
        while todo:
            todo = await self.auth_event_ids_of(todo) - chain
            chain |= todo
        return chain

    async def get_event_id_for_txn(self, sender: str, device_id: str, txn_id: str) -> str | None:
        value = await self.db.fetchval(
            "get_event_for_txn",
            "SELECT event_id FROM events WHERE sender = $1 AND txn_device_id = $2 AND txn_id = $3",
            sender,
            device_id,
            txn_id,
        )
        return None if value is None else str(value)

    async def contents_containing(self, room_id: str, needle: str) -> list[dict[str, Any]]:
        """The content of each unredacted, accepted event of the room whose JSON contains
        ``needle`` (a cheap prefilter: the caller looks at the content itself). ``needle``
        is plain text, without the LIKE wildcards ``%`` and ``_``."""
        rows = await self.db.fetchall(
            "event_contents_containing",
            "SELECT json FROM events WHERE room_id = $1 AND json LIKE $2"
            " AND redacted_by IS NULL AND rejected_reason IS NULL ORDER BY stream_ordering",
            room_id,
            f"%{needle}%",
        )
        contents: list[dict[str, Any]] = []
        for (raw,) in rows:
            content = json.loads(raw).get("content")
            if isinstance(content, dict):
                contents.append(content)
        return contents

    async def get_forward_extremities(self, room_id: str) -> list[str]:
        cached = self._extremities.get(room_id)
        if cached is not None:
            return list(cached)
        rows = await self.db.fetchall(
            "get_forward_extremities",
            "SELECT event_id FROM forward_extremities WHERE room_id = $1",
            room_id,
        )
        return [r[0] for r in rows]

    async def room_events_between(
        self, room_ids: Collection[str], after: int, upto: int, limit: int
    ) -> list[StoredEvent]:
        """The latest ``limit`` timeline events of ``room_ids`` in (after, upto], oldest first."""
        if not room_ids:
            return []
        ids = list(room_ids)
        marks = ", ".join(f"${i + 4}" for i in range(len(ids)))
        epoch = self._epoch  # (a read racing an invalidation is not cached)
        rows = await self.db.fetchall(
            "room_events_between",
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_ordering > $1 AND stream_ordering <= $2"
            f" AND NOT outlier AND NOT soft_failed AND rejected_reason IS NULL"
            f" AND room_id IN ({marks}) ORDER BY stream_ordering DESC LIMIT $3",
            after,
            upto,
            limit,
            *ids,
        )
        events = await self._rows_to_events(rows, epoch)
        events.reverse()
        return events

    async def room_events_after(
        self, room_ids: Collection[str], after: int, upto: int, limit: int
    ) -> list[StoredEvent]:
        """The earliest ``limit`` timeline events of ``room_ids`` in (after, upto], oldest
        first (the legacy event stream reads forwards from its token)."""
        ids = list(room_ids)
        found: list[StoredEvent] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ", ".join(f"${i + 4}" for i in range(len(chunk)))
            epoch = self._epoch  # (a read racing an invalidation is not cached)
            rows = await self.db.fetchall(
                "room_events_after",
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_ordering > $1"
                " AND stream_ordering <= $2 AND NOT outlier AND NOT soft_failed"
                f" AND rejected_reason IS NULL AND room_id IN ({marks})"
                " ORDER BY stream_ordering LIMIT $3",
                after,
                upto,
                limit,
                *chunk,
            )
            found += await self._rows_to_events(rows, epoch)
        if len(ids) > 500:
            found.sort(key=lambda e: e.stream_ordering or 0)
            del found[limit:]
        return found

    async def timeline_after(self, after: int, upto: int, limit: int) -> list[StoredEvent]:
        """The earliest ``limit`` events of every room that entered the live timeline in
        (after, upto], in stream order: accepted, not soft-failed, out-of-band
        memberships included (application service delivery reads these)."""
        epoch = self._epoch  # (a read racing an invalidation is not cached)
        rows = await self.db.fetchall(
            "timeline_after",
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE stream_ordering > $1"
            " AND stream_ordering <= $2 AND NOT soft_failed AND rejected_reason IS NULL"
            " ORDER BY stream_ordering LIMIT $3",
            max(after, 0),
            upto,
            limit,
        )
        return await self._rows_to_events(rows, epoch)

    async def depth_from(self, room_id: str, depth: int, stream: int) -> int | None:
        """The depth of the first timeline event at or after the position
        (depth, stream), or None if the room has none there."""
        value = await self.db.fetchval(
            "depth_from",
            "SELECT depth FROM events WHERE room_id = $1"
            " AND (depth > $2 OR (depth = $2 AND stream_ordering >= $3))"
            " AND stream_ordering IS NOT NULL AND NOT outlier AND NOT soft_failed"
            " AND rejected_reason IS NULL"
            " ORDER BY depth ASC, stream_ordering ASC LIMIT 1",
            room_id,
            depth,
            stream,
        )
        return None if value is None else int(value)

    async def paginate_room(
        self,
        room_id: str,
        *,
        depth: int,
        stream: int,
        backwards: bool,
        limit: int,
        to_depth: int | None = None,
        to_stream: int | None = None,
    ) -> list[StoredEvent]:
        """Timeline events in topological order (depth, stream) from a position.

        Backwards: events strictly before (depth, stream), newest first. Forwards:
        events strictly after it, oldest first. ``to_*`` bounds the other end.
        """
        if backwards:
            cond = "(depth < $2 OR (depth = $2 AND stream_ordering < $3))"
            bound = "AND (depth > $5 OR (depth = $5 AND stream_ordering >= $6))"
            order = "DESC"
        else:
            cond = "(depth > $2 OR (depth = $2 AND stream_ordering > $3))"
            bound = "AND (depth < $5 OR (depth = $5 AND stream_ordering <= $6))"
            order = "ASC"
        if to_depth is None or to_stream is None:
            bound = "AND $5 = $5 AND $6 = $6"
        epoch = self._epoch  # (a read racing an invalidation is not cached)
        rows = await self.db.fetchall(
            "paginate_room",
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE room_id = $1 AND {cond} {bound}"
            " AND stream_ordering IS NOT NULL AND NOT outlier AND NOT soft_failed"
            " AND rejected_reason IS NULL"
            f" ORDER BY depth {order}, stream_ordering {order} LIMIT $4",
            room_id,
            depth,
            stream,
            limit,
            to_depth if to_depth is not None else 0,
            to_stream if to_stream is not None else 0,
        )
        return await self._rows_to_events(rows, epoch)

    async def topological_position(self, stream_position: int, room_id: str) -> tuple[int, int]:
        """The (depth, stream) position of the latest event of the room at or before a stream position."""
        row = await self.db.fetchone(
            "topological_position",
            "SELECT depth, stream_ordering FROM events WHERE room_id = $1 AND stream_ordering <= $2"
            " AND NOT outlier ORDER BY stream_ordering DESC LIMIT 1",
            room_id,
            stream_position,
        )
        if row is None:
            return 0, 0
        return int(row[0]), int(row[1])

    # -- history reads (pagination, context, visibility) -------------------------

    async def last_join_stream(self, room_id: str, user_id: str) -> int | None:
        """Stream position of the user's latest join to the room (None: never joined)."""
        value = await self.db.fetchval(
            "last_join_stream",
            "SELECT MAX(stream_ordering) FROM room_memberships"
            " WHERE user_id = $1 AND room_id = $2 AND membership = 'join'",
            user_id,
            room_id,
        )
        return None if value is None else int(value)

    async def latest_topological_position(self, room_id: str) -> tuple[int, int] | None:
        """(depth, stream) of the topologically last timeline event of the room."""
        row = await self.db.fetchone(
            "latest_topological_position",
            "SELECT depth, stream_ordering FROM events WHERE room_id = $1"
            " AND stream_ordering IS NOT NULL AND NOT outlier"
            " ORDER BY depth DESC, stream_ordering DESC LIMIT 1",
            room_id,
        )
        return None if row is None else (int(row[0]), int(row[1]))

    async def events_by_timestamp(
        self, room_id: str, ts: int, *, forwards: bool, limit: int
    ) -> list[StoredEvent]:
        """Timeline events at or after (forwards) / at or before ``ts``, closest first."""
        cond, order = (
            ("origin_server_ts >= $2", "ASC") if forwards else ("origin_server_ts <= $2", "DESC")
        )
        epoch = self._epoch  # (a read racing an invalidation is not cached)
        rows = await self.db.fetchall(
            "events_by_timestamp",
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE room_id = $1 AND {cond}"
            " AND stream_ordering IS NOT NULL AND NOT outlier AND NOT soft_failed"
            " AND rejected_reason IS NULL"
            f" ORDER BY origin_server_ts {order}, stream_ordering {order} LIMIT $3",
            room_id,
            ts,
            limit,
        )
        return await self._rows_to_events(rows, epoch)

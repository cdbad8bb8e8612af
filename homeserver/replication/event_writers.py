"""Which process persists each room's events (``stream_writers.events``).

Every event of a room is persisted by one event writer, chosen by a hash of the room
ID that is the same in every process and every run (CRC-32, not Python's salted
``hash``), so the room's lane, and with it the room's order, lives in one process.

The hash is nginx's: an upstream block with ``hash $room_id;`` (not ``consistent``)
over the writers, in the same order and with equal weights, picks
``((crc32(key) >> 16) & 0x7fff) % len(writers)`` (the Cache::Memcached formula) when
every writer is up, so the reverse proxy sends a room's events straight to its
writer; a request that lands elsewhere (a writer was down) is forwarded.
"""

from __future__ import annotations

from collections.abc import Sequence

from homeserver.config.workers import room_writer_index


class EventWriters:
    """The event writers of the deployment, seen from one process (``instance``)."""

    def __init__(self, instance: str, writers: Sequence[str]) -> None:
        if not writers:
            raise ValueError("at least one event writer is needed")
        self.instance = instance
        self.writers = tuple(writers)

    def writer_for(self, room_id: str) -> str:
        if len(self.writers) == 1:
            return self.writers[0]
        return self.writers[room_writer_index(room_id, len(self.writers))]

    def is_local(self, room_id: str) -> bool:
        """Whether this process persists ``room_id``'s events itself."""
        return self.writer_for(room_id) == self.instance

    @property
    def writes_events(self) -> bool:
        return self.instance in self.writers

"""What other parts plug into /sync: streams, per-sync hooks, unread counts.

Adding a stream (receipts, typing, account data, presence, to-device, device lists)
is writing one ``SyncExtension`` and appending it to ``SyncService.extensions`` in
the composition root:

- ``stream`` names its field of ``SyncToken``; ``current_position()`` is its
  committed position (read synchronously at the start of a sync, so it goes into
  ``next_batch`` together with the events position);
- ``contribute(sync)`` adds its events for positions in (``sync.since_position``,
  ``sync.upto_position``] to ``sync.result`` (``result.joined_room(room).ephemeral``,
  ``result.account_data``, ``result.presence``, ``result.to_device``,
  ``result.extra["device_lists"]`` ...);
- ``has_updates(user_id, room_ids, since)`` answers, without awaiting, whether a
  long-poll should stop waiting; the stream also wakes waiters through the notifier
  (``on_user_change`` for user-scoped data, ``on_rooms_change`` for room-scoped data).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from homeserver.streams import SyncToken
from homeserver.sync.filters import Filter
from homeserver.sync.result import SyncResult

# Called at the start of every /sync with (user_id, presence): the ``set_presence``
# parameter, "online" when the client left it out (presence installs one).
SyncHook = Callable[[str, str], Awaitable[None]]


@dataclass(frozen=True)
class UnreadCount:
    """A room's unread counts over every thread; for a filter's
    ``unread_thread_notifications``, ``main`` is the main timeline's (notifications,
    highlights) (None: the same as the totals) and ``per_thread`` each thread's by root."""

    notification_count: int = 0
    highlight_count: int = 0
    main: tuple[int, int] | None = None
    per_thread: Mapping[str, tuple[int, int]] = field(default_factory=dict)


class UnreadCounter(Protocol):
    """Push notification counts per joined room (push installs one)."""

    async def unread_counts(
        self, user_id: str, room_ids: Collection[str]
    ) -> dict[str, UnreadCount]: ...


@dataclass
class SyncPass:
    """One computation of a /sync response, handed to every extension."""

    user_id: str
    device_id: str | None
    since: SyncToken | None
    now: SyncToken
    filter: Filter
    full_state: bool
    # rooms the user is joined to at ``now`` (after the filter's rooms/not_rooms)
    joined_room_ids: list[str]
    result: SyncResult
    # incremental: users who joined (or were invited, knocked) in the joined rooms of
    # the response (filled by the rooms part, for presence)
    arrived_users: set[str] = field(default_factory=set)

    def since_position(self, stream: str) -> int | None:
        """This stream's position in ``since`` (None for an initial or full-state sync)."""
        if self.since is None or self.full_state:
            return None
        return int(getattr(self.since, stream))

    def upto_position(self, stream: str) -> int:
        return int(getattr(self.now, stream))


class SyncExtension(Protocol):
    stream: str

    def current_position(self) -> int: ...

    def has_updates(self, user_id: str, room_ids: Collection[str], since: int) -> bool: ...

    async def contribute(self, sync: SyncPass) -> None: ...

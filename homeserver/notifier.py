"""The one notifier: wakes exactly the long-polls a committed change touches.

A waiting /sync registers for its user and for each room the user is in. A new
room event wakes the listeners of that room (and of users named by it, such as the
target of a membership change); user-scoped streams (to-device, account data ...)
wake that user's listeners. A per-room "last changed at" map lets a sync tell,
without a query, whether anything happened in its rooms since its token.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection

# Called with (room_id, stream_ordering, users) after a room event commits, so other
# processes (via Redis) or other parts (push) can react.
RoomEventListener = Callable[[str, int, Collection[str]], Awaitable[None] | None]


class _Waiter:
    """One long-poll's wake-up: a future woken by a change or by its timer (cheaper
    than ``asyncio.wait_for``, which makes a task per wait)."""

    __slots__ = ("future",)

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.future: asyncio.Future[None] = loop.create_future()

    def wake(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class Notifier:
    def __init__(self) -> None:
        self._by_room: dict[str, set[_Waiter]] = defaultdict(set)
        self._by_user: dict[str, set[_Waiter]] = defaultdict(set)
        self._room_last_change: dict[str, int] = {}
        self._user_last_change: dict[str, int] = {}
        self._user_change_counter = 0
        self._changes_epoch = 0  # moves on forget_changes: older seeds are ignored

    # -- publishing -----------------------------------------------------------------

    def on_room_event(
        self, room_id: str, stream_ordering: int, users: Collection[str] = ()
    ) -> None:
        """A room event committed at ``stream_ordering``; ``users`` are directly affected."""
        if stream_ordering > self._room_last_change.get(room_id, 0):
            self._room_last_change[room_id] = stream_ordering
        self._wake(self._by_room.get(room_id, ()))
        for user_id in users:
            self.on_user_change(user_id)

    def on_user_change(self, user_id: str) -> None:
        """Something in one of the user's own streams changed."""
        self._user_change_counter += 1
        self._user_last_change[user_id] = self._user_change_counter
        self._wake(self._by_user.get(user_id, ()))

    def on_rooms_change(self, room_ids: Collection[str]) -> None:
        """An ephemeral change (typing, receipts) in rooms: wake their listeners."""
        for room_id in room_ids:
            self._wake(self._by_room.get(room_id, ()))

    def wake_all(self) -> None:
        """Wake every long-poll (another process's changes may have been missed:
        each re-reads its streams)."""
        for index in (self._by_room, self._by_user):
            for waiters in list(index.values()):
                self._wake(waiters)

    @staticmethod
    def _wake(waiters: Collection[_Waiter]) -> None:
        for waiter in list(waiters):
            waiter.wake()

    # -- querying -------------------------------------------------------------------

    def room_changed_since(self, room_id: str, stream_ordering: int) -> bool:
        """False when the room certainly had no new event after ``stream_ordering``."""
        last = self._room_last_change.get(room_id)
        return last is None or last > stream_ordering

    def rooms_changed_since(self, room_ids: Collection[str], stream_ordering: int) -> list[str]:
        return [r for r in room_ids if self.room_changed_since(r, stream_ordering)]

    def seed_room(self, room_id: str, stream_ordering: int, epoch: int | None = None) -> None:
        """Record a room's latest position known from storage (at start-up or first
        use); ``epoch``: :meth:`changes_epoch` before storage was read (a seed read
        before :meth:`forget_changes` is ignored: it may miss what was forgotten)."""
        if epoch is not None and epoch != self._changes_epoch:
            return
        if stream_ordering > self._room_last_change.get(room_id, 0):
            self._room_last_change[room_id] = stream_ordering

    def changes_epoch(self) -> int:
        """Read before the positions given to :meth:`seed_room` are read."""
        return self._changes_epoch

    def forget_changes(self) -> None:
        """Changes of other processes may have been missed: forget where every room
        last changed, so that each reads as "maybe changed" until seeded again from
        storage."""
        self._room_last_change.clear()
        self._changes_epoch += 1

    def knows_room(self, room_id: str) -> bool:
        return room_id in self._room_last_change

    def user_change_position(self, user_id: str) -> int:
        """A marker that moves whenever ``on_user_change`` touches the user (0 if never).

        Caches keyed by user (such as /sync's memberships of a user) compare it to
        know whether they are still valid, with no race against a commit.
        """
        return self._user_last_change.get(user_id, 0)

    # -- waiting --------------------------------------------------------------------

    async def wait(
        self,
        user_id: str,
        room_ids: Collection[str],
        timeout_s: float,
        is_ready: Callable[[], bool] | None = None,
    ) -> None:
        """Sleep until a change touches the user or one of ``room_ids``, or the timeout.

        ``is_ready`` is checked after registering (no await in between), so a change
        that committed just before the wait is not missed.
        """
        if timeout_s <= 0:
            return
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop)
        self._by_user[user_id].add(waiter)
        for room_id in room_ids:
            self._by_room[room_id].add(waiter)
        try:
            if is_ready is not None and is_ready():
                return
            timer = loop.call_later(timeout_s, waiter.wake)
            try:
                await waiter.future
            finally:
                timer.cancel()
        finally:
            self._discard(self._by_user, user_id, waiter)
            for room_id in room_ids:
                self._discard(self._by_room, room_id, waiter)

    @staticmethod
    def _discard(index: dict[str, set[_Waiter]], key: str, waiter: _Waiter) -> None:
        waiters = index.get(key)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del index[key]

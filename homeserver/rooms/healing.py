"""Healing a room's DAG where an event may not have reached every server in the room.

Each server sends its events to the servers *it* believes are in the room. A server
that sends while a join is on its way to it (or, for Synapse, while its partial-state
join has not yet learnt the room's full membership) leaves the new server out; that
server only learns of the event when a later event cites it (it then asks for the gap
with ``/get_missing_events``). When no later event comes, it never sees it.

So, for each event received from another server, this server checks, a moment later
(``HEAL_DELAY_MS``, time for a later event to cite it), whether it is still a forward
extremity and whether some server has joined members in the room's current state but
had none in the state the event was sent in: that server may have missed it. If so,
or if the room has more than ``MAX_EXTREMITIES`` forward extremities, a local member
sends an ``org.matrix.dummy_event`` (what Synapse sends to merge forks), which cites
every forward extremity and goes to every server in the room; each fetches what it
misses. Events of this server never need it (they go to every server in the current
state), nor do events cited already, so a room where nobody raced a join never sees
a dummy event.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Collection, Mapping
from typing import Protocol

from homeserver.clock import Clock
from homeserver.errors import MatrixError
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

DUMMY_EVENT = "org.matrix.dummy_event"
MEMBER = "m.room.member"
HEAL_DELAY_MS = 500
# more forward extremities than this get merged even when nobody missed anything
MAX_EXTREMITIES = 10
# local members tried as the sender of a dummy event, most powerful first
MAX_SENDERS_TRIED = 5


class EventSender(Protocol):
    """What healing needs of ``EventCreator``."""

    async def send(
        self, room_id: str, event_type: str, sender: str, content: Mapping[str, object]
    ) -> StoredEvent: ...


def _server(user_id: str) -> str:
    return user_id.partition(":")[2]


class ForkHealer:
    """Sends a dummy event into rooms whose recent remote events some server may lack."""

    def __init__(
        self,
        server_name: str,
        stores: Stores,
        creator: EventSender,
        clock: Clock,
        *,
        delay_ms: int = HEAL_DELAY_MS,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self._clock = clock
        self._delay_ms = delay_ms
        # room -> (when to look, remote events to check then)
        self._pending: dict[str, tuple[int, set[str]]] = {}
        self._timer: asyncio.Task[None] | None = None
        self._running = False
        self.dummies_sent = 0

    # -- the persister hook -----------------------------------------------------------

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        """A ``persisted_hooks`` entry (runs in the room's lane: only notes the event)."""
        if (
            stored.outlier
            or stored.rejected_reason is not None
            or stored.soft_failed
            or stored.stream_ordering is None
            or stored.stream_ordering <= 0
            or _server(stored.event.sender) == self._server_name
        ):
            return
        room_id = stored.event.room_id
        due, events = self._pending.get(room_id, (self._clock.time_ms() + self._delay_ms, set()))
        events.add(stored.event_id)
        self._pending[room_id] = (due, events)
        if self._running and (self._timer is None or self._timer.done()):
            self._timer = asyncio.create_task(self._wait_and_heal())

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        """Look at pending rooms on a timer (tests call :meth:`heal_due` instead)."""
        self._running = True
        if self._pending and (self._timer is None or self._timer.done()):
            self._timer = asyncio.create_task(self._wait_and_heal())

    async def stop(self) -> None:
        self._running = False
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
            self._timer = None

    async def _wait_and_heal(self) -> None:
        while self._pending:
            await asyncio.sleep(self._delay_ms / 1000)
            try:
                await self.heal_due()
            except Exception:
                logger.exception("healing rooms failed")

    # -- healing ----------------------------------------------------------------------

    async def heal_due(self) -> list[str]:
        """Heal each pending room whose delay has passed; the rooms a dummy went to."""
        now = self._clock.time_ms()
        due = [r for r, (when, _events) in self._pending.items() if when <= now]
        healed = []
        for room_id in due:
            _when, events = self._pending.pop(room_id)
            try:
                if await self._needs_healing(room_id, events) and await self._send_dummy(room_id):
                    healed.append(room_id)
                    # a dummy cites at most ten: merge the rest after another delay
                    extremities = await self._stores.events.get_forward_extremities(room_id)
                    if len(extremities) > MAX_EXTREMITIES:
                        self._pending.setdefault(room_id, (now + self._delay_ms, set()))
            except Exception:
                logger.exception("healing %s failed", room_id)
        return healed

    async def _needs_healing(self, room_id: str, events: Collection[str]) -> bool:
        extremities = await self._stores.events.get_forward_extremities(room_id)
        if len(extremities) > MAX_EXTREMITIES:
            return True
        uncited = [e for e in events if e in extremities]
        if not uncited:
            return False
        stored = await self._stores.events.get_events(uncited)
        for event_id in uncited:
            found = stored.get(event_id)
            if found is None or found.state_group is None:
                continue
            missed = await self._servers_that_may_lack(room_id, found.state_group)
            if missed:
                logger.info(
                    "%s in %s may not have reached %s: merging the room's extremities",
                    event_id,
                    room_id,
                    ", ".join(sorted(missed)),
                )
                return True
        return False

    async def _servers_that_may_lack(self, room_id: str, state_group: int) -> set[str]:
        """Other servers with joined members now that had none in ``state_group``."""
        state = self._stores.state
        now_joined = set(await state.joined_servers(room_id)) - {self._server_name}
        if not now_joined:
            return set()
        current = await state.get_current_state(room_id)
        members = await state.current_members(room_id)
        then = await state.get_state(state_group)
        unsure = set(now_joined)
        for (event_type, user_id), event_id in current.items():
            if event_type != MEMBER or members.get(user_id) != "join":
                continue
            if then.get((event_type, user_id)) == event_id:
                unsure.discard(_server(user_id))  # the same join then and now
        if not unsure:
            return set()
        wanted = [e for (t, u), e in then.items() if t == MEMBER and _server(u) in unsure]
        then_members = await self._stores.events.get_events(wanted)
        for member in then_members.values():
            if member.event.membership == "join" and member.event.state_key is not None:
                unsure.discard(_server(member.event.state_key))
        return unsure

    async def _send_dummy(self, room_id: str) -> bool:
        """A dummy event from a local member who may send one (most powerful first)."""
        members = await self._stores.state.current_members(room_id)
        local = [u for u, m in members.items() if m == "join" and _server(u) == self._server_name]
        if not local:
            return False
        levels = await self._user_levels(room_id)
        local.sort(key=lambda u: (-levels.get(u, 0), u))
        for user_id in local[:MAX_SENDERS_TRIED]:
            try:
                await self._creator.send(room_id, DUMMY_EVENT, user_id, {})
            except MatrixError as exc:
                logger.info("%s cannot send a dummy event in %s: %s", user_id, room_id, exc)
                continue
            self.dummies_sent += 1
            return True
        return False

    async def _user_levels(self, room_id: str) -> dict[str, int]:
        current = await self._stores.state.get_current_state(room_id)
        event_id = current.get(("m.room.power_levels", ""))
        if event_id is None:
            return {}
        stored = await self._stores.events.get_event(event_id)
        users = stored.event.content.get("users") if stored is not None else None
        if not isinstance(users, dict):
            return {}
        return {u: v for u, v in users.items() if isinstance(v, int) and not isinstance(v, bool)}

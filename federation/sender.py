"""The outbound federation sender: one persisted queue per destination (s2s
"Transactions").

Local events (``on_event_persisted``, a ``persisted_hooks`` entry) go to every other
server in the room before the event: those with a joined member, and the target's
server of a kick, a ban or a withdrawn invite (never of an invite, which went by
``/invite``); EDUs are queued by their producers with :meth:`send_edu`
(optionally coalesced by key, e.g. typing per room). Each destination is drained by
one task at a time, in queue order, in transactions of at most 50 PDUs and 100 EDUs
(``PUT /send/{txnId}``); rows are deleted only after the 200, so a destination that
was down, or a restart of this server, loses nothing.

A failed transaction puts the destination in backoff: the retry interval starts at
``INITIAL_BACKOFF_MS``, doubles per failure up to ``MAX_BACKOFF_MS``, with jitter,
and is stored (``federation_destinations``, served by the admin API). A destination
is tried again when its backoff has passed (:meth:`retry_due`, called by a ticker
and callable by tests after moving a FakeClock) or at once when any request of it
authenticates here (:meth:`on_remote_activity`, told by the X-Matrix authenticator:
it is evidently back, so its backlog starts within a moment, not at the next tick). A transaction the
destination refuses with a 4xx (other than 429) would never succeed: it is dropped.

With workers (``shard`` set) any process may queue, but only a destination's
sender instance drains its queue: a process queueing for, or hearing from, a
destination another instance sends to tells that instance (``SenderShard``), and a
sender (re)starting resumes the queues of its own destinations only. Rows are
deleted only once the remote answered, so a sender killed mid-send sends the same
items again (in a new transaction; the remote drops PDUs it already has).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Collection, Coroutine, Iterable
from contextlib import nullcontext
from typing import Any, Protocol

from federation.errors import FederationError
from homeserver.clock import Clock
from homeserver.events import Event, server_name_of
from homeserver.metrics.components import FederationMetrics
from storage.events import StoredEvent
from storage.federation_queue import QueuedEdu, QueuedPdu
from storage.stores import Stores

logger = logging.getLogger(__name__)

MAX_PDUS_PER_TXN = 50
MAX_EDUS_PER_TXN = 100
INITIAL_BACKOFF_MS = 10_000
MAX_BACKOFF_MS = 24 * 3600 * 1000
BACKOFF_JITTER = 0.2
TICK_S = 5.0
SEND_TIMEOUT_S = 60.0


class TransactionTransport(Protocol):
    """What sending needs of ``federation.client.FederationClient``."""

    async def put_json(
        self,
        destination: str,
        path: str,
        body: Any,
        query: Any = None,
        *,
        timeout_s: float | None = None,
    ) -> Any: ...


class SenderShard(Protocol):
    """Which destinations this process sends to, and how the others' senders are
    told (``homeserver.replication.roles.FederationShard``)."""

    def owns(self, destination: str) -> bool: ...

    def queued_elsewhere(self, destinations: Collection[str]) -> None: ...

    def seen_elsewhere(self, destination: str, *, force: bool = False) -> None: ...


class FederationSender:
    """Per-destination outbound queues with batching and backoff."""

    def __init__(
        self,
        server_name: str,
        stores: Stores,
        transport: TransactionTransport,
        clock: Clock,
        *,
        rng: random.Random | None = None,
        initial_backoff_ms: int = INITIAL_BACKOFF_MS,
        max_backoff_ms: int = MAX_BACKOFF_MS,
    ) -> None:
        self.server_name = server_name
        self._stores = stores
        self._queue = stores.federation_queue
        self._transport = transport
        self._clock = clock
        self._rng = rng or random.Random()
        self._initial_backoff_ms = initial_backoff_ms
        self._max_backoff_ms = max_backoff_ms
        self._running: dict[str, asyncio.Task[None]] = {}
        self._again: set[str] = set()
        self._retry_at: dict[str, int] = {}
        self._txn_counter = 0
        self._ticker: asyncio.Task[None] | None = None
        self._side_tasks: set[asyncio.Future[None]] = set()
        self.metrics: FederationMetrics | None = None  # set when metrics are on
        # with workers: the destinations this process drains (None: every one)
        self.shard: SenderShard | None = None
        # room -> (its state generation, the other servers with joined members)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, *, ticker: bool = True) -> None:
        """Resume the queues left by an earlier run (respecting stored backoff)."""
        await self.retry_due()
        if ticker and self._ticker is None:
            self._ticker = asyncio.create_task(self._tick())

    async def stop(self) -> None:
        tasks = list(self._running.values())
        if self._ticker is not None:
            tasks.append(self._ticker)
            self._ticker = None
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._running.clear()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self.retry_due()
            except Exception:
                logger.exception("federation sender retry tick failed")

    async def wait_idle(self) -> None:
        """Wait until no destination is being drained (for tests and shutdown)."""
        while self._running or self._side_tasks:
            pending = [*self._running.values(), *self._side_tasks]
            await asyncio.gather(*pending, return_exceptions=True)

    async def flush(self, destinations: Iterable[str], timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until what is queued now for ``destinations``
        was sent, or failed: each destination's drain runs until its queue is empty.
        A destination in backoff is not waited for."""

        async def one(destination: str) -> None:
            while (task := self._running.get(destination)) is not None:
                await asyncio.wait([task])

        pending = [one(d) for d in set(destinations) if d != self.server_name]
        if not pending:
            return
        try:
            await asyncio.wait_for(asyncio.gather(*pending), timeout_s)
        except TimeoutError:
            logger.info("flush: still sending to some of %s", sorted(destinations))

    # -- producers ----------------------------------------------------------------------

    async def send_pdu(
        self, event: Event, destinations: Iterable[str], stream_ordering: int | None = None
    ) -> None:
        """Queue ``event`` for each of ``destinations`` (this server is skipped)."""
        dests = sorted({d for d in destinations if d != self.server_name})
        if not dests:
            return
        await self._queue.queue_pdu(
            dests, event.event_id, event.room_id, stream_ordering, self._clock.time_ms()
        )
        if self.metrics is not None:
            self.metrics.pdu_queued(len(dests))
        self.wake(dests, tell_others=True)

    async def send_edu(
        self, destination: str, edu_type: str, content: dict[str, Any], key: str | None = None
    ) -> None:
        """Queue an EDU; with ``key``, it replaces a queued EDU of the same type and key."""
        if destination == self.server_name:
            return
        await self._queue.queue_edu(destination, edu_type, content, key, self._clock.time_ms())
        self.wake([destination], tell_others=True)

    async def send_edu_to_room(
        self, room_id: str, edu_type: str, content: dict[str, Any], key: str | None = None
    ) -> None:
        """Queue an EDU for every other server with a joined member in the room
        (typing, receipts)."""
        for destination in sorted(await self.joined_servers(room_id)):
            await self.send_edu(destination, edu_type, content, key)

    async def joined_servers(self, room_id: str) -> set[str]:
        """Other servers with a joined member in the room's current state."""
        return set(await self._stores.state.joined_servers(room_id) - {self.server_name})

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        """The ``persisted_hooks`` entry: send accepted timeline events of local users."""
        if (
            stored.outlier
            or stored.rejected_reason is not None
            or stored.soft_failed
            or stored.stream_ordering is None
            or stored.stream_ordering < 0
        ):
            return
        event = stored.event
        try:
            if server_name_of(event.sender) != self.server_name:
                return
        except ValueError:
            return
        previous: str | None = None
        if event.type == "m.room.member" and stored.replaces_state is not None:
            replaced = await self._stores.events.get_event(stored.replaces_state)
            previous = replaced.event.membership if replaced is not None else None
        destinations = await self.destinations_for(event, previous)
        await self.send_pdu(event, destinations, stored.stream_ordering)

    async def destinations_for(
        self, event: Event, previous_membership: str | None = None
    ) -> set[str]:
        """The servers in the room before ``event``, as Synapse sends: those with a
        joined member now, plus the target's server of a membership event that ends
        its join (a kick, a ban) or withdraws its invite. An invite itself is not
        sent: the invitee's server had it through ``/invite``, and is not in the
        room."""
        servers = await self.joined_servers(event.room_id)
        if event.type == "m.room.member" and event.state_key:
            target = _server(event.state_key)
            ends_join = previous_membership == "join" and event.membership != "join"
            withdraws_invite = previous_membership == "invite" and event.membership == "leave"
            if (
                target is not None
                and target != self.server_name
                and (ends_join or withdraws_invite)
            ):
                servers.add(target)
        return servers

    # -- remote state -------------------------------------------------------------------

    def run_soon(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` (which queues items) in the background; :meth:`wait_idle`
        waits for it too."""
        task = asyncio.ensure_future(work)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    def owns(self, destination: str) -> bool:
        """Whether this process drains ``destination``'s queue."""
        return self.shard is None or self.shard.owns(destination)

    def wake(self, destinations: Iterable[str], *, tell_others: bool = False) -> None:
        """Something is queued for ``destinations``: drain those this process sends
        to; with ``tell_others``, tell the senders of the rest."""
        elsewhere: list[str] = []
        for destination in destinations:
            if self.owns(destination):
                self._wake(destination)
            else:
                elsewhere.append(destination)
        if elsewhere and tell_others and self.shard is not None:
            self.shard.queued_elsewhere(elsewhere)

    def on_remote_activity(self, destination: str) -> None:
        """``destination`` just talked to us: if it was in backoff, try it now."""
        if not self.owns(destination):
            assert self.shard is not None
            self.shard.seen_elsewhere(destination)
        elif destination in self._retry_at:
            self._retry_at.pop(destination, None)
            self.run_soon(self._resume(destination))

    def resume(self, destination: str) -> None:
        """Another process heard from ``destination``: end its backoff (stored and
        in memory) and send what is queued."""
        if self.owns(destination):
            self._retry_at.pop(destination, None)
            self.run_soon(self._resume(destination))

    def retry_now(self, destination: str) -> None:
        """Its stored backoff was just cleared (an admin's reset_connection): send what
        is queued for ``destination`` now."""
        if not self.owns(destination):
            assert self.shard is not None
            self.shard.seen_elsewhere(destination, force=True)
            return
        self._retry_at.pop(destination, None)
        self._wake(destination)

    async def _resume(self, destination: str) -> None:
        health = await self._queue.get_health(destination)
        if health is not None and health.retry_interval:
            await self._queue.clear_backoff(destination)
        # A concurrent retry_due may have reloaded the stored backoff meanwhile.
        self._retry_at.pop(destination, None)
        self._wake(destination)

    async def retry_due(self) -> None:
        """Start draining every destination with queued items whose backoff passed."""
        now = self._clock.time_ms()
        for dest in await self._queue.destinations_with_queue():
            if not self.owns(dest):
                continue  # another instance's
            if dest not in self._retry_at:
                health = await self._queue.get_health(dest)
                if health is not None and health.retry_interval:
                    self._retry_at[dest] = health.retry_last_ts + health.retry_interval
            if self._retry_at.get(dest, 0) <= now:
                self._retry_at.pop(dest, None)
                self._wake(dest)

    def in_backoff(self, destination: str) -> bool:
        return self._retry_at.get(destination, 0) > self._clock.time_ms()

    # -- draining -----------------------------------------------------------------------

    def _wake(self, destination: str) -> None:
        if not self.owns(destination):
            return
        if destination in self._running:
            self._again.add(destination)
            return
        if self.in_backoff(destination):
            return
        task = asyncio.create_task(self._drain(destination))
        self._running[destination] = task

        def done(_: asyncio.Task[None]) -> None:
            if self._running.get(destination) is task:
                del self._running[destination]
            if destination in self._again:
                self._again.discard(destination)
                self._wake(destination)

        task.add_done_callback(done)

    async def _drain(self, destination: str) -> None:
        try:
            while True:
                self._again.discard(destination)
                pdus = await self._queue.next_pdus(destination, MAX_PDUS_PER_TXN)
                edus = await self._queue.next_edus(destination, MAX_EDUS_PER_TXN)
                if not pdus and not edus:
                    return
                if not await self._send_one(destination, pdus, edus):
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("federation queue of %s failed", destination)
            await self._backoff(destination)

    async def _send_one(
        self, destination: str, pdus: list[QueuedPdu], edus: list[QueuedEdu]
    ) -> bool:
        """Send one transaction; True when its rows are done with (sent or dropped)."""
        body = await self._transaction_body(pdus, edus)
        self._txn_counter += 1
        txn_id = f"{self._clock.time_ms()}_{self._txn_counter}"
        metrics = self.metrics
        try:
            # Synapse's block name: the dashboard counts failed transactions as its
            # runs minus synapse_federation_client_sent_transactions.
            with metrics.blocks.measure("_send_new_transaction") if metrics else nullcontext():
                await self._transport.put_json(
                    destination,
                    f"/_matrix/federation/v1/send/{txn_id}",
                    body,
                    timeout_s=SEND_TIMEOUT_S,
                )
            if metrics is not None:
                metrics.transaction_sent([e.edu_type for e in edus])
        except FederationError as exc:
            if exc.retryable:
                logger.info("transaction to %s failed, backing off: %s", destination, exc)
                await self._backoff(destination)
                return False
            logger.warning("%s refused a transaction, dropping it: %s", destination, exc)
        last = max((p.stream_ordering for p in pdus if p.stream_ordering is not None), default=None)
        await self._queue.remove_sent(destination, [p.id for p in pdus], [e.id for e in edus], last)
        self._retry_at.pop(destination, None)
        return True

    async def _transaction_body(
        self, pdus: list[QueuedPdu], edus: list[QueuedEdu]
    ) -> dict[str, Any]:
        stored = await self._stores.events.get_events([p.event_id for p in pdus])
        pdu_json: list[dict[str, Any]] = []
        for queued in pdus:
            event = stored.get(queued.event_id)
            if event is None:
                continue
            pdu = event.event.redacted_pdu() if event.redacted_by else event.event.pdu
            pdu_json.append(dict(pdu))
        body: dict[str, Any] = {
            "origin": self.server_name,
            "origin_server_ts": self._clock.time_ms(),
            "pdus": pdu_json,
        }
        if edus:
            body["edus"] = [{"edu_type": e.edu_type, "content": e.content} for e in edus]
        return body

    async def _backoff(self, destination: str) -> None:
        now = self._clock.time_ms()
        health = await self._queue.get_health(destination)
        previous = health.retry_interval if health is not None else 0
        interval = (
            self._initial_backoff_ms if not previous else min(previous * 2, self._max_backoff_ms)
        )
        failure_ts = health.failure_ts if health is not None and health.failure_ts else now
        await self._queue.set_backoff(destination, now, interval, failure_ts)
        jitter = 1 + self._rng.uniform(-BACKOFF_JITTER, BACKOFF_JITTER)
        self._retry_at[destination] = now + int(interval * jitter)


def _server(user_id: str) -> str | None:
    _local, sep, server = user_id.partition(":")
    return server if sep else None

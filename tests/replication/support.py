"""Test doubles of the replication tests: a network of publishers whose deliveries
the test drives, and a store whose allocations the test may hold unanswered."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from homeserver.replication.notices import Notice, StreamPosition
from storage.database import Database, Transaction
from storage.stream_positions import StreamPositionStore


class Network:
    """Processes that publish to each other, each link first-in first-out (as Redis
    keeps one publisher's order); nothing is delivered until the test says so."""

    def __init__(self) -> None:
        self._handlers: dict[str, Callable[[Notice], None]] = {}
        self.queues: dict[tuple[str, str], deque[Notice]] = {}
        self._publishers: dict[str, _NodePublisher] = {}

    def join(self, name: str, handler: Callable[[Notice], None]) -> None:
        for other in self._handlers:
            self.queues[(name, other)] = deque()
            self.queues[(other, name)] = deque()
        self._handlers[name] = handler

    def publisher(self, name: str) -> _NodePublisher:
        """``name``'s publisher (the same one each time), which keeps what it sent."""
        if name not in self._publishers:
            self._publishers[name] = _NodePublisher(self, name)
        return self._publishers[name]

    def links_with_mail(self) -> list[tuple[str, str]]:
        return [link for link, queue in self.queues.items() if queue]

    def deliver_one(self, link: tuple[str, str]) -> None:
        notice = self.queues[link].popleft()
        self._handlers[link[1]](notice)

    def deliver_all(self) -> None:
        while links := self.links_with_mail():
            for link in links:
                while self.queues[link]:
                    self.deliver_one(link)


class _NodePublisher:
    def __init__(self, network: Network, name: str) -> None:
        self._network = network
        self._name = name
        self.published: list[Notice] = []

    def publish(self, notice: Notice) -> None:
        self.published.append(notice)
        for (sender, _), queue in self._network.queues.items():
            if sender == self._name:
                queue.append(notice)


def positions_of(notices: list[Notice]) -> list[int]:
    return [n.position for n in notices if isinstance(n, StreamPosition)]


class GatedStore(StreamPositionStore):
    """A store whose allocations, once the sequence has handed the values out, wait
    for the test to let them answer: ``hold`` for the batches of ``allocate_async``,
    ``hold_txn`` for ``allocate_txn``."""

    def __init__(self, db: Database, *, hold: bool = False, hold_txn: bool = False) -> None:
        super().__init__(db)
        self.hold = hold
        self.hold_txn = hold_txn
        self.waiting: list[tuple[list[int], asyncio.Future[None]]] = []

    async def next_stream_ids(self, sequence: str, count: int) -> list[int]:
        positions = await super().next_stream_ids(sequence, count)
        if self.hold:
            await self._gate(positions)
        return positions

    async def next_stream_id_txn(self, txn: Transaction, sequence: str) -> int:
        position = await super().next_stream_id_txn(txn, sequence)
        if self.hold_txn:
            await self._gate([position])
        return position

    async def _gate(self, positions: list[int]) -> None:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((positions, gate))
        await gate

    def release_all(self) -> None:
        """Answer everything, and hold nothing from now on (a test's teardown)."""
        self.hold = self.hold_txn = False
        while self.waiting:
            self.answer()

    def handed_out(self) -> list[int]:
        """The values handed out and not answered yet."""
        return [p for positions, _ in self.waiting for p in positions]

    def answer(self, index: int = 0) -> list[int]:
        positions, gate = self.waiting.pop(index)
        if not gate.done():  # (done: its asker was cancelled)
            gate.set_result(None)
        return positions

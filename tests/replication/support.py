"""Test doubles of the replication tests: a network of publishers whose deliveries
the test drives, and a store whose allocations the test may hold unanswered."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from homeserver.replication.notices import Notice, StreamPosition
from storage.database import Database
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
    """A store whose allocations, once the sequence has handed the value out, wait
    for the test to let them answer (``hold`` True)."""

    def __init__(self, db: Database, *, hold: bool = False) -> None:
        super().__init__(db)
        self.hold = hold
        self.waiting: list[tuple[int, asyncio.Future[None]]] = []

    async def next_stream_id(self, sequence: str) -> int:
        position = await super().next_stream_id(sequence)
        if self.hold:
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self.waiting.append((position, gate))
            await gate
        return position

    def answer(self, index: int = 0) -> int:
        position, gate = self.waiting.pop(index)
        gate.set_result(None)
        return position

"""Stream positions and sync tokens.

Every kind of change a client can sync is a stream with a monotonically increasing
position. Positions are handed out by a ``StreamIdGenerator``; a position becomes
visible (``current()``) only once it and every lower position have finished, so a
reader never skips a change that commits late.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, fields, replace
from typing import Any, Protocol

from homeserver.errors import MatrixError

# The largest stream position or depth a token may carry (what the database stores:
# a 64-bit integer); a token beyond it names nothing and is refused as invalid.
MAX_POSITION = 2**63 - 1


class StreamPositions(Protocol):
    """What persists at a stream's positions needs: one process's StreamIdGenerator,
    or with workers the generator whose positions come from the database."""

    async def allocate_txn(self, txn: Any) -> int: ...

    def finish(self, position: int) -> None: ...

    def current(self) -> int: ...


class StreamIdGenerator:
    """Allocates positions of one stream in this process; tracks what is finished."""

    def __init__(self, current: int, *, step: int = 1) -> None:
        self._step = step
        self._last = current
        self._current = current
        self._unfinished: list[int] = []
        self._finished_early: set[int] = set()

    def allocate(self) -> int:
        self._last += self._step
        position = self._last
        heapq.heappush(self._unfinished, position * self._step)
        return position

    async def allocate_txn(self, txn: Any) -> int:
        """``allocate``, under the signature of the generators that take positions
        inside the transaction that uses them (the database's sequence)."""
        return self.allocate()

    def finish(self, position: int) -> None:
        """Mark ``position`` committed or abandoned."""
        self._finished_early.add(position * self._step)
        while self._unfinished and self._unfinished[0] in self._finished_early:
            key = heapq.heappop(self._unfinished)
            self._finished_early.discard(key)
            self._current = key * self._step
        if not self._unfinished:
            self._current = self._last

    def current(self) -> int:
        """The highest position such that every position up to it has finished."""
        return self._current


# No stream position is beyond a signed 64-bit integer (the databases' BIGINT).
MAX_POSITION = 2**63 - 1


# The streams of a sync token, in the order they appear in its string form.
@dataclass(frozen=True)
class SyncToken:
    events: int = 0
    receipts: int = 0
    typing: int = 0
    presence: int = 0
    account_data: int = 0
    to_device: int = 0
    device_lists: int = 0
    invites: int = 0

    def serialize(self) -> str:
        return "s" + "_".join(str(getattr(self, f.name)) for f in fields(self))

    @classmethod
    def parse(cls, text: str) -> SyncToken:
        """Parse a token; M_UNKNOWN (400) for anything that is not one of ours."""
        if not text.startswith("s"):
            raise MatrixError(400, "M_UNKNOWN", "Invalid stream token")
        parts = text[1:].split("_")
        names = [f.name for f in fields(cls)]
        if not parts or len(parts) > len(names):
            raise MatrixError(400, "M_UNKNOWN", "Invalid stream token")
        try:
            values = [int(p) for p in parts]
        except ValueError as exc:
            raise MatrixError(400, "M_UNKNOWN", "Invalid stream token") from exc
        if any(v < 0 or v > MAX_POSITION for v in values):
            raise MatrixError(400, "M_UNKNOWN", "Invalid stream token")
        return cls(**dict(zip(names, values, strict=False)))

    def with_stream(self, name: str, position: int) -> SyncToken:
        return replace(self, **{name: position})

    def is_after(self, other: SyncToken) -> bool:
        """True when any stream of this token is ahead of ``other``."""
        return any(getattr(self, f.name) > getattr(other, f.name) for f in fields(self))


@dataclass(frozen=True)
class TopologicalToken:
    """A position in a room's DAG order for /messages: ``t<depth>-<stream>``."""

    depth: int
    stream: int

    def serialize(self) -> str:
        return f"t{self.depth}-{self.stream}"


def parse_pagination_token(text: str) -> TopologicalToken | SyncToken:
    """A ``from``/``to`` token of /messages: a topological or a sync token."""
    if text.startswith("t"):
        depth, sep, stream = text[1:].partition("-")
        try:
            if not sep:
                raise ValueError(text)
            token = TopologicalToken(int(depth), int(stream))
        except ValueError as exc:
            raise MatrixError(400, "M_UNKNOWN", "Invalid pagination token") from exc
        if abs(token.depth) > MAX_POSITION or abs(token.stream) > MAX_POSITION:
            raise MatrixError(400, "M_UNKNOWN", "Invalid pagination token")
        return token
    return SyncToken.parse(text)

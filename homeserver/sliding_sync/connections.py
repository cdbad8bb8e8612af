"""Sliding sync connections: what each connection's client already holds.

A connection is a (user, device, ``conn_id``). Each response's ``pos`` names the
connection's state after it (``"<connection position>/<sync token>"``): which rooms
the client was sent and up to where, with which ``required_state``, and the members
lazy loading sent. The next request names the ``pos`` it builds on, so only changes
are sent. The last few states of a connection are kept (a client whose response was
lost retries with the previous ``pos``); older ones, idle connections and connections
beyond the bounds are dropped, and a ``pos`` no longer known is ``M_UNKNOWN_POS``
(the client then starts the connection again, as with Synapse after a restart).
Kept in memory, in the process that serves the user's syncs.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from homeserver.errors import MatrixError
from homeserver.sliding_sync.extensions import ExtensionsState
from homeserver.sliding_sync.required_state import RequiredState
from homeserver.streams import SyncToken

# States kept per connection (the newest, and the ones a retry may name).
POSITIONS_KEPT = 3
MAX_CONNECTIONS = 20_000
MAX_CONNECTIONS_PER_DEVICE = 20
IDLE_EXPIRY_MS = 7 * 24 * 3600 * 1000  # as long as a client may stay away and resume


class UnknownPos(MatrixError):
    def __init__(self) -> None:
        super().__init__(400, "M_UNKNOWN_POS", "Unknown position: start a new connection")


@dataclass(frozen=True)
class RoomStatus:
    """What the client holds of a room: events up to ``upto`` (the events stream),
    the state ``required`` asked, the lazily loaded members sent, and the membership
    (position) it was sent with."""

    upto: int
    required: RequiredState
    lazy_sent: frozenset[str] = frozenset()
    membership: str = "join"
    membership_stream: int = 0


@dataclass(frozen=True)
class ConnectionState:
    token: SyncToken | None = None  # where the streams were at this state (None: new)
    rooms: dict[str, RoomStatus] = field(default_factory=dict)
    # the room IDs of each list's windows as last sent (a change is worth a response)
    lists: dict[str, tuple[tuple[str, ...], int]] = field(default_factory=dict)
    # what the extensions sent (account data and receipts by room)
    extensions: ExtensionsState = field(default_factory=ExtensionsState)


@dataclass
class _Connection:
    next_position: int = 1
    states: OrderedDict[int, ConnectionState] = field(default_factory=OrderedDict)
    last_used_ms: int = 0


def format_pos(position: int, token: SyncToken) -> str:
    return f"{position}/{token.serialize()}"


def parse_pos(text: str) -> tuple[int, SyncToken]:
    position, sep, token = text.partition("/")
    if not sep or not position.isascii() or not position.isdigit() or len(position) > 18:
        raise UnknownPos()
    try:
        return int(position), SyncToken.parse(token)
    except MatrixError:
        raise UnknownPos() from None


class SlidingSyncConnections:
    """Every connection's recent states (bounded, least recently used dropped first)."""

    def __init__(self, max_connections: int = MAX_CONNECTIONS) -> None:
        self._max = max_connections
        self._connections: OrderedDict[tuple[str, str, str], _Connection] = OrderedDict()
        # each device's connection IDs, least recently used first
        self._by_device: dict[tuple[str, str], OrderedDict[str, None]] = {}

    def start(self, user_id: str, device_id: str, conn_id: str, now_ms: int) -> ConnectionState:
        """A request without ``pos``: the connection starts again from nothing."""
        key = (user_id, device_id, conn_id)
        self._connections.pop(key, None)
        connection = _Connection(last_used_ms=now_ms)
        self._connections[key] = connection
        self._bound(user_id, device_id, conn_id)
        return ConnectionState()

    def get(
        self, user_id: str, device_id: str, conn_id: str, position: int, now_ms: int
    ) -> ConnectionState:
        key = (user_id, device_id, conn_id)
        connection = self._connections.get(key)
        if connection is None or now_ms - connection.last_used_ms > IDLE_EXPIRY_MS:
            self._connections.pop(key, None)
            raise UnknownPos()
        state = connection.states.get(position)
        if state is None:
            raise UnknownPos()
        connection.last_used_ms = now_ms
        self._connections.move_to_end(key)
        return state

    def record(
        self,
        user_id: str,
        device_id: str,
        conn_id: str,
        state: ConnectionState,
        now_ms: int,
        previous: int | None,
    ) -> int:
        """Keep ``state`` as the connection's newest; its position for the next ``pos``.
        States older than ``previous`` (what the client built on) are dropped: the
        client has seen ``previous``'s answer or will retry from ``previous``."""
        key = (user_id, device_id, conn_id)
        connection = self._connections.get(key)
        if connection is None:
            connection = self._connections[key] = _Connection()
        position = connection.next_position
        connection.next_position += 1
        connection.states[position] = state
        connection.last_used_ms = now_ms
        if previous is not None:
            for old in [p for p in connection.states if p < previous]:
                del connection.states[old]
        while len(connection.states) > POSITIONS_KEPT:
            connection.states.popitem(last=False)
        self._connections.move_to_end(key)
        self._bound(user_id, device_id, conn_id)
        return position

    def forget_device(self, user_id: str, device_id: str) -> None:
        for conn_id in self._by_device.pop((user_id, device_id), {}):
            self._connections.pop((user_id, device_id, conn_id), None)

    def _bound(self, user_id: str, device_id: str, conn_id: str) -> None:
        mine = self._by_device.setdefault((user_id, device_id), OrderedDict())
        mine[conn_id] = None
        mine.move_to_end(conn_id)
        while len(mine) > MAX_CONNECTIONS_PER_DEVICE:
            oldest, _ = mine.popitem(last=False)
            self._connections.pop((user_id, device_id, oldest), None)
        while len(self._connections) > self._max:
            (user, device, conn), _ = self._connections.popitem(last=False)
            ids = self._by_device.get((user, device))
            if ids is not None:
                ids.pop(conn, None)
                if not ids:
                    del self._by_device[(user, device)]

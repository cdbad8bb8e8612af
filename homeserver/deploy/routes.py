"""Which process serves each public path: the routing table, as data.

Each `Route` is a regular expression (valid for nginx's PCRE and Python's ``re``),
the listener resource the path belongs to, and the roles that should serve it, in
order of preference, for reads (GET, HEAD, OPTIONS) and for writes (other methods).
The first route whose pattern matches decides; a role nobody holds falls through to
the next one, and the main process serves what no worker does. The lists follow
Synapse's documented generic_worker endpoints (docs/workers.md), with one rule of
this server: only the writer of a stream takes the requests that write it (event
sends go to any event writer, which hands a room's events to the room's writer).

`upstream_for` answers for one path as nginx will (tests compare the two), and
`nginx.py` writes the same table as ``location`` blocks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from homeserver.deploy.workers import MAIN, WorkersPlan

READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
NOT_FOUND: Final = "not_found"  # a path outside the listener's resources
FORBIDDEN: Final = "forbidden"  # replication: never from outside

# The paths of replication between processes, refused on public listeners.
REPLICATION_PREFIX: Final = "/_synapse/replication"

_CS = r"^/_matrix/client/(api/v1|r0|v3|unstable)"  # every client API version
_CS3 = r"^/_matrix/client/(r0|v3|unstable)"


@dataclass(frozen=True, slots=True)
class Route:
    pattern: str
    resources: frozenset[str]  # the listener resources the path belongs to
    read: tuple[str, ...]  # roles for GET/HEAD/OPTIONS, preferred first
    write: tuple[str, ...]  # roles for other methods

    def matches(self, path: str) -> bool:
        return re.search(self.pattern, path) is not None


def _route(pattern: str, resources: str, read: str, write: str | None = None) -> Route:
    """`resources`, `read` and `write` are names separated by spaces; no role means
    the main process."""
    read_roles = tuple(read.split())
    write_roles = read_roles if write is None else tuple(write.split())
    return Route(pattern, frozenset(resources.split()), read_roles, write_roles)


ROUTES: Final[tuple[Route, ...]] = (
    # --- media (all methods: uploads write the media repository's own tables)
    _route(r"^/_matrix/media/", "media", "media"),
    _route(r"^/_matrix/client/v1/media/", "media", "media"),
    _route(r"^/_matrix/federation/v1/media/", "federation", "media federation_inbound"),
    # --- sync, sticky by access token
    _route(r"^/_matrix/client/(r0|v3)/sync$", "client", "sync"),
    _route(r"^/_matrix/client/(api/v1|r0|v3)/events$", "client", "sync"),
    _route(r"^/_matrix/client/(api/v1|r0|v3)/initialSync$", "client", "sync"),
    _route(r"^/_matrix/client/(api/v1|r0|v3)/rooms/[^/]+/initialSync$", "client", "sync"),
    _route(r"^/_matrix/client/unstable/org\.matrix\.simplified_msc3575/sync$", "client", "sync"),
    # --- streams of one writer: their endpoints go to the writer (reads too)
    _route(_CS + r"/rooms/[^/]+/typing/", "client", "typing", "typing"),
    _route(_CS3 + r"/sendToDevice/", "client", "to_device", "to_device"),
    _route(
        _CS3 + r"/user/[^/]+/rooms/[^/]+/tags(/|$)", "client", "account_data client", "account_data"
    ),
    _route(
        _CS3 + r"/user/[^/]+/(rooms/[^/]+/)?account_data/",
        "client",
        "account_data client",
        "account_data",
    ),
    _route(_CS3 + r"/rooms/[^/]+/receipt/", "client", "receipts", "receipts"),
    _route(_CS3 + r"/rooms/[^/]+/read_markers$", "client", "receipts", "receipts"),
    _route(_CS + r"/presence/", "client", "presence client", "presence"),
    # --- room events: any event writer (it forwards to the room's writer)
    _route(_CS + r"/createRoom$", "client", "events"),
    _route(_CS + r"/rooms/[^/]+/send/", "client", "events"),
    _route(_CS + r"/rooms/[^/]+/redact/", "client", "events"),
    _route(_CS + r"/rooms/[^/]+/state/", "client", "client", "events"),
    _route(_CS + r"/rooms/[^/]+/(join|invite|leave|ban|unban|kick|knock)$", "client", "events"),
    _route(_CS + r"/(join|knock)/", "client", "events"),
    _route(_CS + r"/profile/", "client", "client", "events"),
    # --- client reads
    _route(_CS + r"/rooms/[^/]+/messages$", "client", "client", ""),
    _route(_CS + r"/rooms/[^/]+/context/", "client", "client", ""),
    _route(_CS + r"/rooms/[^/]+/members$", "client", "client", ""),
    _route(_CS + r"/rooms/[^/]+/joined_members$", "client", "client", ""),
    _route(_CS + r"/rooms/[^/]+/state$", "client", "client", ""),
    _route(_CS + r"/rooms/[^/]+/event/", "client", "client", ""),
    _route(_CS + r"/rooms/[^/]+/aliases$", "client", "client", ""),
    _route(r"^/_matrix/client/(v1|unstable)/rooms/[^/]+/relations/", "client", "client", ""),
    _route(r"^/_matrix/client/v1/rooms/[^/]+/threads$", "client", "client", ""),
    _route(r"^/_matrix/client/v1/rooms/[^/]+/hierarchy$", "client", "client", ""),
    _route(r"^/_matrix/client/v1/rooms/[^/]+/timestamp_to_event$", "client", "client", ""),
    _route(_CS + r"/publicRooms$", "client", "client"),  # POST searches
    _route(_CS + r"/joined_rooms$", "client", "client", ""),
    _route(_CS + r"/search$", "client", "client"),  # POST searches
    _route(_CS3 + r"/user_directory/search$", "client", "client"),  # POST searches
    _route(_CS + r"/directory/room/", "client", "client", ""),
    _route(_CS3 + r"/account/whoami$", "client", "client", ""),
    _route(_CS3 + r"/capabilities$", "client", "client", ""),
    _route(r"^/_matrix/client/versions$", "client", "client", ""),
    _route(_CS + r"/voip/turnServer$", "client", "client", ""),
    _route(_CS3 + r"/notifications$", "client", "client", ""),
    _route(_CS3 + r"/keys/query$", "client", "client"),  # POST reads
    _route(_CS3 + r"/keys/changes$", "client", "client", ""),
    _route(_CS3 + r"/room_keys/", "client", "client", ""),
    _route(_CS + r"/devices(/|$)", "client", "client", ""),
    _route(_CS + r"/pushrules/", "client", "client", ""),
    _route(_CS3 + r"/user/[^/]+/filter/", "client", "client", ""),
    _route(_CS3 + r"/register/available$", "client", "client", ""),
    # --- federation (transactions from one server stay on one process: see nginx.py)
    _route(r"^/_matrix/federation/v1/openid/userinfo$", "openid federation", "federation_inbound"),
    _route(r"^/_matrix/federation/", "federation", "federation_inbound"),
    _route(r"^/_matrix/key/", "keys", "federation_inbound"),
    _route(r"^/health$", "health", ""),
)


def choose(plan: WorkersPlan, roles: tuple[str, ...]) -> str:
    """The first of `roles` some worker holds, else the main process."""
    for role in roles:
        if plan.holding(role):
            return role
    return MAIN


def upstream_for(plan: WorkersPlan, resources: frozenset[str], method: str, path: str) -> str:
    """Where a public listener serving `resources` sends ``method path``: a role
    (its upstream), `MAIN`, `NOT_FOUND` or `FORBIDDEN`."""
    if path.startswith(REPLICATION_PREFIX):
        return FORBIDDEN
    for route in ROUTES:
        if route.resources & resources and route.matches(path):
            roles = route.read if method.upper() in READ_METHODS else route.write
            return choose(plan, roles)
    return MAIN if fallback_serves(resources) else NOT_FOUND


def fallback_serves(resources: frozenset[str]) -> bool:
    """Whether paths no route claims go to the main process (client listeners: the
    admin API, SSO pages, /.well-known, /health ...), else they are not found."""
    return "client" in resources

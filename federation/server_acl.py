"""Server access control lists (client-server "Server Access Control Lists (ACLs)
for rooms", the ``m.room.server_acl`` event schema; server-server "Server Access
Control Lists (ACLs)").

:func:`server_allowed_by_acl` is the pure matcher: the ACL content of a room and a
server name in, allowed or not out, in the order the event schema gives:

1. no ``m.room.server_acl`` event in the room state: allow;
2. an IP literal server name while ``allow_ip_literals`` is ``false``: deny;
3. a match in ``deny``: deny;
4. a match in ``allow``: allow;
5. otherwise deny.

Patterns are case-insensitive globs (appendices "Glob-style matching": ``*`` any run
of characters, ``?`` exactly one) matched against the server name without its port.

:class:`ServerAclChecker` reads the ACL from a room's current state.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any, Protocol

from homeserver.errors import Forbidden

SERVER_ACL = "m.room.server_acl"


def host_without_port(server_name: str) -> str:
    """The hostname part of a server name (``[v6]`` brackets kept, port dropped)."""
    if server_name.startswith("["):
        end = server_name.find("]")
        return server_name if end < 0 else server_name[: end + 1]
    host, _sep, _port = server_name.partition(":")
    return host


def is_ip_literal(host: str) -> bool:
    """Whether ``host`` (without port) is an IPv4 or bracketed IPv6 literal."""
    candidate = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=4096)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for char in pattern:
        if char == "*":
            parts.append(".*")
        elif char == "?":
            parts.append(".")
        else:
            parts.append(re.escape(char))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


def glob_matches(pattern: str, value: str) -> bool:
    """Case-insensitive glob match of the whole of ``value``."""
    return _glob_regex(pattern).fullmatch(value) is not None


def _patterns(content: Mapping[str, Any], key: str) -> list[str]:
    raw = content.get(key)
    if not isinstance(raw, list):
        return []
    return [p for p in raw if isinstance(p, str)]


def server_allowed_by_acl(server_name: str, acl_content: Mapping[str, Any] | None) -> bool:
    """Whether ``server_name`` may take part in a room with this ACL (None: no ACL)."""
    if acl_content is None:
        return True
    host = host_without_port(server_name)
    allow_ip_literals = acl_content.get("allow_ip_literals", True)
    if allow_ip_literals is False and is_ip_literal(host):
        return False
    if any(glob_matches(p, host) for p in _patterns(acl_content, "deny")):
        return False
    return any(glob_matches(p, host) for p in _patterns(acl_content, "allow"))


class AclStateReader(Protocol):
    """The ACL content of a room's current state (None without one)."""

    async def current_acl(self, room_id: str) -> Mapping[str, Any] | None: ...


class ServerAclChecker:
    """Applies a room's current ``m.room.server_acl`` to requesting servers."""

    def __init__(self, state: AclStateReader) -> None:
        self._state = state

    async def allowed(self, server_name: str, room_id: str) -> bool:
        return server_allowed_by_acl(server_name, await self._state.current_acl(room_id))

    async def check(self, server_name: str, room_id: str) -> None:
        """403 M_FORBIDDEN when the room's ACL denies ``server_name`` (s2s "Server ACLs")."""
        if not await self.allowed(server_name, room_id):
            raise Forbidden(f"Server {server_name} is denied by the room's server ACL")


class CurrentStateAclReader:
    """:class:`AclStateReader` over the stores: the current ``m.room.server_acl``."""

    def __init__(self, stores: Any) -> None:
        self._stores = stores

    async def current_acl(self, room_id: str) -> Mapping[str, Any] | None:
        state = await self._stores.state.get_current_state(room_id)
        event_id = state.get((SERVER_ACL, ""))
        if event_id is None:
            return None
        stored = await self._stores.events.get_event(event_id)
        return None if stored is None else stored.event.content

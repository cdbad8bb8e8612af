"""The space hierarchy over federation (server-server API, "Spaces"):
``GET /_matrix/federation/v1/hierarchy/{roomId}`` served from this server's rooms,
and asked of other servers for rooms this server is not in (the
``SpaceService.remote_hierarchy`` hook)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from aiohttp import web

from federation.auth import FederationAuthenticator
from federation.client import FederationClient
from federation.errors import FederationError
from federation.routes import FEDERATION_V1, Route
from federation.server_acl import ServerAclChecker
from homeserver.http.body import query_bool
from homeserver.http.middleware import compact_dumps
from homeserver.spaces.rules import space_child
from homeserver.spaces.service import RemoteHierarchy, SpaceService

logger = logging.getLogger(__name__)

HIERARCHY_TIMEOUT_S = 20.0
MAX_ANSWER_BYTES = 4 * 1024 * 1024


class FederationHierarchy:
    def __init__(
        self, spaces: SpaceService, client: FederationClient, acl: ServerAclChecker
    ) -> None:
        self._spaces = spaces
        self._client = client
        self._acl = acl
        spaces.remote_hierarchy = self.ask

    async def on_get_hierarchy(self, origin: str, request: web.Request) -> web.Response:
        room_id = request.match_info["roomId"]
        await self._acl.check(origin, room_id)
        body = await self._spaces.federation_hierarchy(
            origin, room_id, query_bool(request, "suggested_only", False)
        )
        return web.json_response(body, dumps=compact_dumps)

    async def ask(
        self, via: Sequence[str], room_id: str, suggested_only: bool
    ) -> RemoteHierarchy | None:
        """The first usable answer of the ``via`` servers, or None."""
        path = f"{FEDERATION_V1}/hierarchy/{quote(room_id, safe='')}"
        query = {"suggested_only": "true" if suggested_only else "false"}
        for server in via:
            try:
                answer = await self._client.get_json(
                    server, path, query, timeout_s=HIERARCHY_TIMEOUT_S, max_bytes=MAX_ANSWER_BYTES
                )
            except FederationError as exc:
                logger.info("hierarchy of %s from %s: %s", room_id, server, exc)
                continue
            parsed = parse_answer(room_id, answer)
            if parsed is not None:
                return parsed
            logger.info("hierarchy of %s from %s: malformed answer", room_id, server)
        return None

    def routes(self, auth: FederationAuthenticator) -> list[Route]:
        return [
            (
                "GET",
                f"{FEDERATION_V1}/hierarchy/{{roomId}}",
                auth.authenticated(self.on_get_hierarchy),
            )
        ]


def parse_answer(room_id: str, answer: Any) -> RemoteHierarchy | None:
    """A remote server's hierarchy answer, keeping only what has the spec's shape: the
    room must be the one asked for; malformed children are dropped."""
    if not isinstance(answer, Mapping):
        return None
    room = answer.get("room")
    if not isinstance(room, Mapping) or room.get("room_id") != room_id:
        return None
    raw_state = room.get("children_state")
    children_state = [
        child.stripped
        for child in (
            space_child(e)
            for e in (raw_state if isinstance(raw_state, list) else [])
            if isinstance(e, Mapping)
        )
        if child is not None
    ]
    summary = {k: v for k, v in room.items() if k != "children_state"}
    children: dict[str, dict[str, Any]] = {}
    raw_children = answer.get("children")
    for child in raw_children if isinstance(raw_children, list) else []:
        if isinstance(child, Mapping) and isinstance(child.get("room_id"), str):
            children[child["room_id"]] = dict(child)
    raw_inaccessible = answer.get("inaccessible_children")
    inaccessible = frozenset(
        r
        for r in (raw_inaccessible if isinstance(raw_inaccessible, list) else [])
        if isinstance(r, str)
    )
    return RemoteHierarchy(summary, children_state, children, inaccessible)

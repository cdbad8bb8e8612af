"""Federation queries and the published room directory (s2s "Querying for
information", "Published Room Directory"), served and asked.

Served: ``GET /query/directory?room_alias=`` (our aliases only), ``GET
/query/profile?user_id=&field=`` (our users only), ``GET``/``POST /publicRooms``
(only when ``allow_public_rooms_over_federation`` is set, else 403).

Asked: :class:`RemoteQueries` gives the ``DirectoryService.remote_alias_lookup``,
``DirectoryService.remote_public_rooms`` and ``ProfileService.remote_lookup`` hooks,
so clients can resolve aliases, list the published rooms of other servers
(``/publicRooms?server=``) and read profiles of users on other servers.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from federation.errors import FederationError
from federation.requester import FederationRequester
from homeserver.errors import (
    BadJson,
    Forbidden,
    InvalidParam,
    MatrixError,
    MissingParam,
    NotFound,
)
from homeserver.events import InvalidIdentifier, RoomAlias, UserID
from homeserver.http.body import get_bool, get_dict, get_int, get_list, get_str, json_object
from homeserver.http.middleware import compact_dumps
from homeserver.profiles import ProfileService
from homeserver.rooms.directory import DirectoryService, PublicRoomsQuery
from storage.stores import Stores

logger = logging.getLogger(__name__)

QUERY_TIMEOUT_S = 20.0


class QueryHandlers:
    """Handlers taking ``(origin, request)`` after X-Matrix authentication."""

    def __init__(
        self,
        server_name: str,
        stores: Stores,
        profiles: ProfileService,
        directory: DirectoryService,
        allow_public_rooms: bool,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._profiles = profiles
        self._directory = directory
        self._allow_public_rooms = allow_public_rooms

    async def on_query_other(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/query/{queryType}: a query type this server has
        no handler for (directory and profile have their own routes)."""
        query_type = request.match_info["queryType"]
        raise NotFound(f"No handler for Query type '{query_type}'")

    async def on_query_directory(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/query/directory (s2s: queryRoomDirectory)."""
        alias = request.query.get("room_alias")
        if not alias:
            raise MissingParam("Missing parameter: room_alias")
        try:
            parsed = RoomAlias.parse(alias)
        except InvalidIdentifier as exc:
            raise InvalidParam(f"Invalid room alias: {alias}") from exc
        if parsed.domain != self._server_name:
            raise NotFound("Room alias not found")
        room_id, _servers = await self._directory.resolve_alias(alias)
        servers = await self._stores.state.joined_servers(room_id) - {self._server_name}
        body = {"room_id": room_id, "servers": [self._server_name, *sorted(servers)]}
        return web.json_response(body, dumps=compact_dumps)

    async def on_query_profile(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/query/profile (s2s: queryProfile)."""
        user_id = request.query.get("user_id")
        if not user_id:
            raise MissingParam("Missing parameter: user_id")
        try:
            parsed = UserID.parse(user_id)
        except InvalidIdentifier as exc:
            raise InvalidParam(f"Invalid user ID: {user_id}") from exc
        if parsed.domain != self._server_name:
            raise InvalidParam("User is not hosted on this homeserver")
        profile = await self._profiles.get_profile(user_id)
        field = request.query.get("field")
        if field is not None:
            if field not in profile:
                raise NotFound(f"The user has no {field}")
            profile = {field: profile[field]}
        return web.json_response(profile, dumps=compact_dumps)

    async def on_get_public_rooms(self, origin: str, request: web.Request) -> web.Response:
        """GET /_matrix/federation/v1/publicRooms (s2s: getPublicRooms)."""
        self._check_public_rooms()
        limit: int | None = None
        if "limit" in request.query:
            try:
                limit = int(request.query["limit"])
            except ValueError as exc:
                raise InvalidParam("limit must be an integer") from exc
            if limit < 0:
                raise InvalidParam("limit must not be negative")
            limit = limit or None  # 0 means no limit
        query = PublicRoomsQuery(
            limit=limit,
            since=request.query.get("since"),
            include_all_networks=request.query.get("include_all_networks") == "true",
            third_party_instance_id=request.query.get("third_party_instance_id") or None,
        )
        result = await self._directory.local_public_rooms(query)
        return web.json_response(result, dumps=compact_dumps)

    async def on_post_public_rooms(self, origin: str, request: web.Request) -> web.Response:
        """POST /_matrix/federation/v1/publicRooms (s2s: queryPublicRooms)."""
        self._check_public_rooms()
        body = await json_object(request, allow_empty=True)
        limit = get_int(body, "limit", None)
        if limit is not None and limit < 0:
            raise InvalidParam("limit must not be negative")
        filter_ = get_dict(body, "filter", {})
        room_types = get_list(filter_, "room_types", None)
        if room_types is not None and not all(t is None or isinstance(t, str) for t in room_types):
            raise BadJson("'room_types' must be an array of strings or nulls")
        query = PublicRoomsQuery(
            limit=limit,
            since=get_str(body, "since", None),
            search_term=get_str(filter_, "generic_search_term", None),
            room_types=room_types,
            include_all_networks=get_bool(body, "include_all_networks", False),
            third_party_instance_id=get_str(body, "third_party_instance_id", None),
        )
        result = await self._directory.local_public_rooms(query)
        return web.json_response(result, dumps=compact_dumps)

    def _check_public_rooms(self) -> None:
        if not self._allow_public_rooms:
            raise Forbidden("The room directory is not published over federation")


class RemoteQueries:
    """Asking other servers: aliases, published rooms and profiles of their users."""

    def __init__(self, client: FederationRequester) -> None:
        self._client = client

    async def lookup_alias(self, alias: str) -> tuple[str, list[str]] | None:
        """The DirectoryService ``remote_alias_lookup`` hook (None: not found)."""
        try:
            server = RoomAlias.parse(alias).domain
            answer = await self._client.get_json(
                server,
                "/_matrix/federation/v1/query/directory",
                {"room_alias": alias},
                timeout_s=QUERY_TIMEOUT_S,
            )
        except InvalidIdentifier:
            return None
        except FederationError as exc:
            if exc.status == 404:
                return None
            raise exc.to_matrix_error() from None
        room_id = answer.get("room_id") if isinstance(answer, dict) else None
        servers = answer.get("servers") if isinstance(answer, dict) else None
        if not isinstance(room_id, str):
            return None
        if not isinstance(servers, list):
            servers = []
        return room_id, [s for s in servers if isinstance(s, str)]

    async def lookup_profile(self, user_id: str) -> dict[str, Any]:
        """The ProfileService ``remote_lookup`` hook: the profile or M_NOT_FOUND."""
        try:
            server = UserID.parse(user_id).domain
            answer = await self._client.get_json(
                server,
                "/_matrix/federation/v1/query/profile",
                {"user_id": user_id},
                timeout_s=QUERY_TIMEOUT_S,
            )
        except InvalidIdentifier as exc:
            raise NotFound("Profile was not found") from exc
        except FederationError as exc:
            if exc.status in (403, 404):
                raise NotFound("Profile was not found") from None
            raise exc.to_matrix_error() from None
        if not isinstance(answer, dict):
            raise NotFound("Profile was not found")
        profile = {k: v for k, v in answer.items() if isinstance(k, str) and v is not None}
        for key in ("displayname", "avatar_url"):
            if key in profile and not isinstance(profile[key], str):
                del profile[key]
        return profile

    async def public_rooms(self, server: str, query: PublicRoomsQuery) -> dict[str, Any]:
        """The DirectoryService ``remote_public_rooms`` hook: ``server``'s published rooms.

        ``GET /publicRooms`` (s2s getPublicRooms), or ``POST`` (queryPublicRooms) when
        the query filters. A remote error is passed on when a client can act on it
        (403: the directory is not published over federation, 404), anything else
        (unreachable, 5xx, an answer of the wrong shape) is 502 M_UNKNOWN.
        """
        path = "/_matrix/federation/v1/publicRooms"
        try:
            if query.filtered:
                answer = await self._client.post_json(
                    server, path, _public_rooms_body(query), timeout_s=QUERY_TIMEOUT_S
                )
            else:
                answer = await self._client.get_json(
                    server, path, _public_rooms_params(query), timeout_s=QUERY_TIMEOUT_S
                )
        except FederationError as exc:
            raise exc.to_matrix_error() from None
        return _public_rooms_answer(server, answer)


def _public_rooms_params(query: PublicRoomsQuery) -> dict[str, str]:
    """The query string of GET /publicRooms: the body's fields (only unfiltered queries
    are sent as GET, so there is no filter)."""
    return {k: "true" if v is True else str(v) for k, v in _public_rooms_body(query).items()}


def _public_rooms_body(query: PublicRoomsQuery) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if query.limit is not None:
        body["limit"] = query.limit
    if query.since is not None:
        body["since"] = query.since
    filter_: dict[str, Any] = {}
    if query.search_term is not None:
        filter_["generic_search_term"] = query.search_term
    if query.room_types is not None:
        filter_["room_types"] = query.room_types
    if filter_:
        body["filter"] = filter_
    if query.include_all_networks:
        body["include_all_networks"] = True
    if query.third_party_instance_id is not None:
        body["third_party_instance_id"] = query.third_party_instance_id
    return body


def _public_rooms_answer(server: str, answer: Any) -> dict[str, Any]:
    """The parts of a remote /publicRooms answer a client can use; 502 if it has none."""
    chunk = answer.get("chunk") if isinstance(answer, dict) else None
    if not isinstance(chunk, list):
        raise MatrixError(502, "M_UNKNOWN", f"{server} sent an invalid room directory")
    rooms = [
        room
        for room in chunk
        if isinstance(room, dict)
        and isinstance(room.get("room_id"), str)
        and isinstance(room.get("num_joined_members"), int)
    ]
    result: dict[str, Any] = {"chunk": rooms}
    estimate = answer.get("total_room_count_estimate")
    if isinstance(estimate, int) and not isinstance(estimate, bool):
        result["total_room_count_estimate"] = estimate
    for key in ("next_batch", "prev_batch"):
        if isinstance(answer.get(key), str):
            result[key] = answer[key]
    return result

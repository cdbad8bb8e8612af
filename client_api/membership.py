"""Room membership endpoints (client-server API: "Room membership")."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from client_api.consent import require_consent
from client_api.context import ClientContext
from client_api.versions import json_response
from homeserver.auth import Requester, require_not_suspended
from homeserver.errors import BadJson, InvalidParam, MissingParam
from homeserver.events import is_valid_user_id
from homeserver.http.body import get_str, json_object
from homeserver.ratelimit import RateLimit
from homeserver.rooms.member_lists import MEMBERSHIPS
from homeserver.rooms.third_party_invites import ThirdPartyId, check_signed
from storage.events import StoredEvent


class MembershipHandlers:
    def __init__(self, ctx: ClientContext) -> None:
        self._ctx = ctx
        rc = ctx.config.rc_joins
        self._local_join_limit = RateLimit(rc.local.per_second, rc.local.burst_count)
        self._remote_join_limit = RateLimit(rc.remote.per_second, rc.remote.burst_count)

    async def _limit_join(self, requester: Requester, room_id: str) -> None:
        """``rc_joins``: a new join spends from the user's local or remote bucket (a
        repeated join of a joined member does not; nor do an application service's
        users, unless it is rate limited)."""
        if not requester.rate_limited:
            return
        user_id = requester.user_id
        if await self._ctx.membership.joins_locally(room_id):
            if await self._ctx.membership.membership_of(room_id, user_id) == "join":
                return
            self._ctx.limiter.check("join_local", user_id, self._local_join_limit)
        else:
            self._ctx.limiter.check("join_remote", user_id, self._remote_join_limit)

    async def _resolve_room(self, request: web.Request) -> tuple[str, list[str]]:
        """The room of ``{roomIdOrAlias}`` (or ``{roomId}``) and the servers to try for it."""
        target = request.match_info.get("roomIdOrAlias") or request.match_info["roomId"]
        servers: list[str] = []
        if target.startswith("#"):
            room_id, servers = await self._ctx.directory.resolve_alias(target)
        elif target.startswith("!"):
            room_id = target
        else:
            raise InvalidParam("Expected a room ID or alias")
        servers = (
            servers + request.query.getall("via", []) + request.query.getall("server_name", [])
        )
        return room_id, list(dict.fromkeys(servers))

    async def join(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/join/{roomIdOrAlias} and /rooms/{roomId}/join.

        The body of ``/join/{roomIdOrAlias}`` also gives the join event more content
        (any other keys are kept in it, as Synapse keeps them); ``/rooms/{roomId}/join``
        takes only the reason."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        reason = get_str(body, "reason", None)
        room_id, servers = await self._resolve_room(request)
        require_not_suspended(requester, "Joining rooms")
        await require_consent(self._ctx, requester, room_id)
        await self._limit_join(requester, room_id)
        signed = body.get("third_party_signed")
        if signed is not None:
            # the invite a bound third-party ID proves, made before joining (as Synapse)
            signed = check_signed(signed, requester.user_id)
            sender = signed.get("sender")
            if not isinstance(sender, str) or not is_valid_user_id(sender):
                raise BadJson("third_party_signed needs the sender of the invite")
            await self._ctx.third_party_invites.exchange(sender, requester.user_id, room_id, signed)
        extra = body if "roomIdOrAlias" in request.match_info else None
        result = await self._ctx.membership.join(
            requester.user_id, room_id, reason=reason, servers=servers, extra_content=extra
        )
        joined = result.event.room_id if isinstance(result, StoredEvent) else result
        return json_response({"room_id": joined})

    async def knock(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/knock/{roomIdOrAlias}."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        reason = get_str(body, "reason", None)
        room_id, servers = await self._resolve_room(request)
        require_not_suspended(requester, "Knocking on rooms")
        await require_consent(self._ctx, requester, room_id)
        result = await self._ctx.membership.knock(
            requester.user_id, room_id, reason=reason, servers=servers
        )
        knocked = result.event.room_id if isinstance(result, StoredEvent) else result
        return json_response({"room_id": knocked})

    async def _target_and_reason(self, request: web.Request) -> tuple[str, str, str | None]:
        body = await json_object(request)
        target = get_str(body, "user_id")
        if not is_valid_user_id(target):
            raise BadJson(f"Invalid user ID: {target}")
        return request.match_info["roomId"], target, get_str(body, "reason", None)

    async def invite(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/invite, of a user or of a third-party
        ID (``id_server``, ``id_access_token``, ``medium``, ``address``)."""
        requester = await self._ctx.requester(request)
        body = await json_object(request)
        require_not_suspended(requester, "Sending invites")
        await require_consent(self._ctx, requester, request.match_info["roomId"])
        if requester.shadow_banned:
            return json_response({})  # as Synapse: a fake success, nobody is invited
        if "user_id" not in body and ("medium" in body or "address" in body):
            await self._ctx.third_party_invites.invite(
                requester.user_id, request.match_info["roomId"], ThirdPartyId.parse(body)
            )
            return json_response({})
        room_id, target, reason = await self._target_and_reason(request)
        await self._ctx.membership.change(
            requester.user_id, room_id, target, "invite", reason=reason
        )
        return json_response({})

    async def kick(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/kick."""
        requester = await self._ctx.requester(request)
        room_id, target, reason = await self._target_and_reason(request)
        await self._ctx.membership.kick(requester.user_id, room_id, target, reason=reason)
        return json_response({})

    async def ban(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/ban."""
        requester = await self._ctx.requester(request)
        room_id, target, reason = await self._target_and_reason(request)
        await self._ctx.membership.ban(requester.user_id, room_id, target, reason=reason)
        return json_response({})

    async def unban(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/unban."""
        requester = await self._ctx.requester(request)
        room_id, target, reason = await self._target_and_reason(request)
        await self._ctx.membership.unban(requester.user_id, room_id, target, reason=reason)
        return json_response({})

    async def leave(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/leave."""
        requester = await self._ctx.requester(request)
        body = await json_object(request, allow_empty=True)
        reason = get_str(body, "reason", None)
        await self._ctx.membership.change(
            requester.user_id,
            request.match_info["roomId"],
            requester.user_id,
            "leave",
            reason=reason,
        )
        return json_response({})

    async def forget(self, request: web.Request) -> web.Response:
        """POST /_matrix/client/v3/rooms/{roomId}/forget."""
        requester = await self._ctx.requester(request)
        await json_object(request, allow_empty=True)
        await self._ctx.membership.forget(requester.user_id, request.match_info["roomId"])
        return json_response({})

    async def joined_rooms(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/joined_rooms."""
        requester = await self._ctx.requester(request)
        rooms = await self._ctx.membership.joined_rooms(requester.user_id)
        return json_response({"joined_rooms": sorted(rooms)})

    async def mutual_rooms(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v1/mutual_rooms?user_id= (getMutualRooms)."""
        requester = await self._ctx.requester(request)
        other = request.query.get("user_id")
        if other is None:
            raise MissingParam("Missing query parameter: user_id")
        rooms, count, following = await self._ctx.membership.mutual_rooms(
            requester.user_id, other, request.query.get("from")
        )
        body: dict[str, Any] = {"joined": rooms, "count": count}
        if following is not None:
            body["next_batch"] = following
        return json_response(body)

    async def get_members(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/members."""
        requester = await self._ctx.requester(request)
        filters = {}
        for key in ("membership", "not_membership"):
            value = request.query.get(key)
            if value is not None and value not in MEMBERSHIPS:
                raise InvalidParam(f"'{key}' must be one of {', '.join(MEMBERSHIPS)}")
            filters[key] = value
        events = await self._ctx.members.members(
            requester.user_id,
            request.match_info["roomId"],
            at=request.query.get("at"),
            membership=filters["membership"],
            not_membership=filters["not_membership"],
        )
        chunk = await self._ctx.serializer.serialize(
            events, user_id=requester.user_id, device_id=requester.device_id
        )
        return json_response({"chunk": chunk})

    async def joined_members(self, request: web.Request) -> web.Response:
        """GET /_matrix/client/v3/rooms/{roomId}/joined_members."""
        requester = await self._ctx.requester(request)
        joined = await self._ctx.members.joined_members(
            requester.user_id, request.match_info["roomId"]
        )
        return json_response({"joined": joined})

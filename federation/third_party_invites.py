"""Third-party invites over federation (server-server API "Third-party invites"):
``PUT /3pid/onbind`` (from an identity server, whose ``signed`` blocks are the proof
rather than a request signature) and ``PUT /exchange_third_party_invite/{roomId}``
(from a server not in the room whose user was bound); and the outbound side of both,
installed into the `ThirdPartyInviteService`."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from federation.auth import FederationAuthenticator
from federation.client import FederationClient
from federation.errors import FederationError
from federation.routes import FEDERATION_V1, Route
from federation.sender import FederationSender
from federation.server_acl import ServerAclChecker
from homeserver.errors import BadJson, NotFound
from homeserver.events import server_name_of
from homeserver.http.body import get_dict, get_str, json_object
from homeserver.rooms.third_party_invites import ThirdPartyInviteService, check_signed
from storage.events import StoredEvent


class FederationThirdPartyInvites:
    def __init__(
        self,
        service: ThirdPartyInviteService,
        client: FederationClient,
        sender: FederationSender,
        acl: ServerAclChecker,
    ) -> None:
        self._service = service
        self._client = client
        self._sender = sender
        self._acl = acl
        service.remote_exchange = self.exchange_remotely
        service.send_on_behalf = self.send_on_behalf

    async def exchange_remotely(
        self, destination: str, room_id: str, event: dict[str, Any]
    ) -> None:
        path = f"{FEDERATION_V1}/exchange_third_party_invite/{quote(room_id, safe='')}"
        try:
            await self._client.put_json(destination, path, event)
        except FederationError as exc:
            raise exc.to_matrix_error() from None

    async def send_on_behalf(self, stored: StoredEvent) -> None:
        event = stored.event
        if stored.stream_ordering is None:
            return
        # the invitee's server asked for it (it is not in the room: /send, as the
        # exchange has no /invite step)
        destinations = await self._sender.destinations_for(event)
        if event.state_key:
            destinations.add(server_name_of(event.state_key))
        await self._sender.send_pdu(event, destinations, stored.stream_ordering)

    async def on_bind(self, request: web.Request) -> web.Response:
        await self._service.on_bind(await json_object(request))
        return web.json_response({})

    async def on_exchange(self, origin: str, request: web.Request) -> web.Response:
        room_id = request.match_info["roomId"]
        body = await json_object(request)
        if get_str(body, "type") != "m.room.member":
            raise BadJson("type must be m.room.member")
        if get_str(body, "room_id") != room_id:
            raise BadJson("room_id does not match the path")
        sender = get_str(body, "sender")
        target = get_str(body, "state_key")
        content = get_dict(body, "content")
        if content.get("membership") != "invite":
            raise BadJson("membership must be invite")
        third_party_invite = content.get("third_party_invite")
        if not isinstance(third_party_invite, dict):
            raise BadJson("content has no third_party_invite")
        signed = check_signed(third_party_invite.get("signed"), target)
        await self._acl.check(origin, room_id)
        if not await self._service.in_room(room_id):
            raise NotFound("This server is not in the room")
        await self._service.make_invite(sender, target, room_id, signed)
        return web.json_response({})

    def routes(self, auth: FederationAuthenticator) -> list[Route]:
        return [
            # PUT as the spec says; POST as identity servers (Sydent) send and Synapse serves
            ("PUT", f"{FEDERATION_V1}/3pid/onbind", self.on_bind),
            ("POST", f"{FEDERATION_V1}/3pid/onbind", self.on_bind),
            (
                "PUT",
                f"{FEDERATION_V1}/exchange_third_party_invite/{{roomId}}",
                auth.authenticated(self.on_exchange),
            ),
        ]

"""Inviting by third-party identifier (client-server API "Third-party invites",
server-server API "Third-party invites").

An invite of an e-mail address asks the inviter's identity server who it is bound
to: a bound address is invited as its Matrix user. An unbound one is stored at the
identity server, and an ``m.room.third_party_invite`` event (its token, display name
and the identity server's public keys) goes into the room. When the address is
bound later, the identity server tells the user's homeserver (``/3pid/onbind``) with
a ``signed`` block; that homeserver turns it into an ``m.room.member`` invite whose
``third_party_invite`` the auth rules check against the room's public keys — itself
if it is in the room, otherwise by asking a server that is
(``/exchange_third_party_invite``). The ``signed`` block is checked here too, and so
is the validity of the key that signed it, at the identity server.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from homeserver.errors import BadJson, Forbidden, MatrixError, NotFound
from homeserver.events import server_name_of
from homeserver.events.signing import verify_signed_with_public_key
from homeserver.identity.client import IdentityServerClient, IdentityServerError
from homeserver.profiles import ProfileService
from homeserver.rooms.creator import EventCreator
from homeserver.rooms.membership import MembershipService
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

THIRD_PARTY_INVITE = "m.room.third_party_invite"

# Asks another server to make the invite of an exchange: (destination, room_id, event).
RemoteExchange = Callable[[str, str, dict[str, Any]], Awaitable[None]]
# Sends an event this server made for a user of another server (a third-party invite).
SendOnBehalf = Callable[[StoredEvent], Awaitable[None]]


@dataclass(frozen=True)
class ThirdPartyId:
    """Who to invite by third-party ID, and through which identity server."""

    id_server: str
    id_access_token: str
    medium: str
    address: str

    @staticmethod
    def parse(body: Mapping[str, Any]) -> ThirdPartyId:
        """From an /invite body or an ``invite_3pid`` entry; 400 M_MISSING_PARAM or
        M_BAD_JSON if a field is absent or not a string."""
        values = []
        for key in ("id_server", "id_access_token", "medium", "address"):
            value = body.get(key)
            if value is None:
                raise MatrixError(400, "M_MISSING_PARAM", f"Missing parameter: {key}")
            if not isinstance(value, str) or not value:
                raise BadJson(f"{key} must be a non-empty string")
            values.append(value)
        return ThirdPartyId(*values)


def check_signed(signed: Any, target: str) -> dict[str, Any]:
    """The ``signed`` block of a third-party invite for ``target``, or 400 M_BAD_JSON."""
    if not isinstance(signed, dict):
        raise BadJson("signed must be an object")
    for key in ("mxid", "token", "signatures"):
        if key not in signed:
            raise BadJson(f"signed has no {key}")
    if not isinstance(signed["token"], str) or not isinstance(signed["signatures"], dict):
        raise BadJson("signed needs a string token and an object of signatures")
    if signed["mxid"] != target:
        raise BadJson("signed.mxid is not the invited user")
    return signed


def public_keys_of(content: Mapping[str, Any]) -> list[tuple[str, str | None]]:
    """(public key, key validity URL) pairs of an ``m.room.third_party_invite``."""
    keys: list[tuple[str, str | None]] = []
    many = content.get("public_keys")
    if isinstance(many, list):
        for entry in many:
            if isinstance(entry, Mapping) and isinstance(entry.get("public_key"), str):
                url = entry.get("key_validity_url")
                keys.append((entry["public_key"], url if isinstance(url, str) else None))
    single = content.get("public_key")
    if isinstance(single, str):
        url = content.get("key_validity_url")
        keys.append((single, url if isinstance(url, str) else None))
    return keys


class ThirdPartyInviteService:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        creator: EventCreator,
        membership: MembershipService,
        profiles: ProfileService,
        identity: IdentityServerClient,
    ) -> None:
        self._server_name = server_name
        self._stores = stores
        self._creator = creator
        self._membership = membership
        self._profiles = profiles
        self._identity = identity
        # installed by federation
        self.remote_exchange: RemoteExchange | None = None
        self.send_on_behalf: SendOnBehalf | None = None

    # -- the inviter's side ---------------------------------------------------------

    async def invite(self, sender: str, room_id: str, invitee: ThirdPartyId) -> None:
        """POST /rooms/{roomId}/invite with a third-party ID (and createRoom's
        ``invite_3pid``)."""
        id_server, id_access_token = invitee.id_server, invitee.id_access_token
        medium, address = invitee.medium, invitee.address
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Unknown room")
        if await self._membership.membership_of(room_id, sender) != "join":
            raise Forbidden("You are not joined to this room")
        bound = await self._identity.lookup(id_server, id_access_token, medium, address)
        if bound is not None:
            await self._membership.change(sender, room_id, bound, "invite")
            return
        stored = await self._identity.store_invite(
            id_server, id_access_token, await self._invite_details(sender, room_id, medium, address)
        )
        token = stored.get("token")
        display_name = stored.get("display_name")
        if not isinstance(token, str) or not token or not isinstance(display_name, str):
            raise IdentityServerError(f"{id_server} stored the invite without a token")
        # the v2 answer names validity URLs only in public_keys; as Synapse, a single
        # public_key not among them is checked at the server's /pubkey/isvalid
        default_url = f"https://{id_server}/_matrix/identity/v2/pubkey/isvalid"
        public_keys: list[dict[str, str]] = []
        for key, url in public_keys_of(stored):
            if all(entry["public_key"] != key for entry in public_keys):
                public_keys.append({"public_key": key, "key_validity_url": url or default_url})
        if not public_keys:
            raise IdentityServerError(f"{id_server} stored the invite without public keys")
        content = {
            "display_name": display_name,
            "public_keys": public_keys,
            # for servers that read only the single key
            "public_key": public_keys[-1]["public_key"],
            "key_validity_url": public_keys[-1]["key_validity_url"],
        }
        await self._creator.send(room_id, THIRD_PARTY_INVITE, sender, content, state_key=token)

    async def _invite_details(
        self, sender: str, room_id: str, medium: str, address: str
    ) -> dict[str, Any]:
        """What the identity server may put in its invitation message."""
        state = await self._stores.state.get_current_state(room_id)
        wanted = {
            "room_name": ("m.room.name", "name"),
            "room_avatar_url": ("m.room.avatar", "url"),
            "room_join_rules": ("m.room.join_rules", "join_rule"),
            "room_alias": ("m.room.canonical_alias", "alias"),
        }
        events = await self._creator.state_events(
            {(t, ""): state[(t, "")] for t, _ in wanted.values() if (t, "") in state}
        )
        details: dict[str, Any] = {
            "medium": medium,
            "address": address,
            "room_id": room_id,
            "sender": sender,
        }
        for field, (event_type, key) in wanted.items():
            event = events.get((event_type, ""))
            if event is not None and isinstance(event.content.get(key), str):
                details[field] = event.content[key]
        profile = await self._profiles.get_profile(sender)
        if isinstance(profile.get("displayname"), str):
            details["sender_display_name"] = profile["displayname"]
        if isinstance(profile.get("avatar_url"), str):
            details["sender_avatar_url"] = profile["avatar_url"]
        return details

    # -- the invitee's side ---------------------------------------------------------

    async def in_room(self, room_id: str) -> bool:
        """Whether this server can make events in the room."""
        return await self._membership.joins_locally(room_id)

    async def on_bind(self, body: Mapping[str, Any]) -> None:
        """PUT /_matrix/federation/v1/3pid/onbind (from an identity server): each
        pending invite of the now bound user becomes an invite in its room. One
        invite that cannot be made does not stop the others, but the identity server
        is told (the first refusal is the answer, as Synapse answers)."""
        mxid = body.get("mxid")
        invites = body.get("invites", [])
        if not isinstance(mxid, str) or not isinstance(invites, list):
            raise BadJson("onbind needs an mxid and a list of invites")
        if not self._membership.is_mine(mxid):
            raise BadJson(f"{mxid} is not a user of this server")
        refused: MatrixError | None = None
        for invite in invites:
            if not isinstance(invite, dict):
                raise BadJson("each invite must be an object")
            room_id, sender = invite.get("room_id"), invite.get("sender")
            if invite.get("mxid") != mxid:
                raise BadJson("an invite names another user")
            if not isinstance(room_id, str) or not isinstance(sender, str):
                raise BadJson("each invite needs a room_id and a sender")
            signed = check_signed(invite.get("signed"), mxid)
            try:
                await self.exchange(sender, mxid, room_id, signed)
            except MatrixError as exc:
                logger.warning("third-party invite of %s to %s refused: %s", mxid, room_id, exc)
                refused = refused or exc
        if refused is not None:
            raise refused

    async def exchange(
        self, sender: str, target: str, room_id: str, signed: dict[str, Any]
    ) -> None:
        """Make the invite a ``signed`` block proves: here if this server is in the room,
        else through a server that is (the sender's, or the room's)."""
        if await self.in_room(room_id):
            await self.make_invite(sender, target, room_id, signed)
            return
        if self.remote_exchange is None:
            raise NotFound("This server is not in the room")
        event = {
            "type": "m.room.member",
            "room_id": room_id,
            "sender": sender,
            "state_key": target,
            "content": {"membership": "invite", "third_party_invite": {"signed": signed}},
        }
        destinations = [server_name_of(sender)]
        if ":" in room_id and server_name_of(room_id) not in destinations:
            destinations.append(server_name_of(room_id))
        last: MatrixError | None = None
        for destination in destinations:
            if destination == self._server_name:
                continue
            try:
                await self.remote_exchange(destination, room_id, event)
                return
            except MatrixError as exc:
                last = exc
        raise last or NotFound("No server can make this invite")

    async def make_invite(
        self, sender: str, target: str, room_id: str, signed: dict[str, Any]
    ) -> StoredEvent:
        """The invite event itself, in a room this server is in (also what another
        server asks for with /exchange_third_party_invite)."""
        signed = check_signed(signed, target)
        state = await self._stores.state.get_current_state(room_id)
        key = (THIRD_PARTY_INVITE, signed["token"])
        if key not in state:
            raise Forbidden("Could not find the third-party invite")
        invite_event = (await self._creator.state_events({key: state[key]}))[key]
        if invite_event.sender != sender:
            raise Forbidden("The third-party invite was sent by someone else")
        await self._check_signature(signed, invite_event.content)
        display_name = invite_event.content.get("display_name")
        stored = await self._membership.third_party_invite(
            sender,
            room_id,
            target,
            {
                "display_name": display_name if isinstance(display_name, str) else "",
                "signed": signed,
            },
        )
        if not self._membership.is_mine(sender) and self.send_on_behalf is not None:
            # the sender's server did not make this event: send it for them
            await self.send_on_behalf(stored)
        return stored

    async def _check_signature(self, signed: dict[str, Any], content: Mapping[str, Any]) -> None:
        """A public key of the invite must have signed ``signed`` and must still be
        valid by its identity server (403 otherwise; 502 if it cannot be asked)."""
        unreachable: IdentityServerError | None = None
        for public_key, url in public_keys_of(content):
            if not verify_signed_with_public_key(signed, public_key):
                continue
            if url is None:
                return
            try:
                if await self._identity.key_is_valid(url, public_key):
                    return
            except IdentityServerError as exc:
                unreachable = exc
                continue
            raise Forbidden("Third party certificate was invalid")
        if unreachable is not None:
            raise unreachable
        raise Forbidden("The third-party invite is not signed by the identity server")

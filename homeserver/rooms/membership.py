"""Membership changes by local users: join, invite, leave, kick, ban, unban, knock.

The authorization rules of the event core decide what is allowed; this service
builds the right membership event (profile fields, reasons, ``is_direct``, the
authorising user of a restricted join, stripped state for invitees and knockers).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from homeserver.appservice import AppServices
from homeserver.errors import BadJson, Forbidden, InvalidParam, MatrixError, NotFound
from homeserver.events import InvalidIdentifier, PowerLevels, UserID, server_name_of
from homeserver.profiles import MAX_AVATAR_URL_LENGTH, MAX_DISPLAYNAME_LENGTH
from homeserver.rooms.creator import Countersign, EventCreator, TxnKey
from homeserver.rooms.guest_access import GUEST_ACCESS, guest_access_in_stripped, guests_may_join
from storage.events import StoredEvent
from storage.stores import Stores

logger = logging.getLogger(__name__)

MUTUAL_ROOMS_PAGE = 100

# State keys copied, stripped, into invites and knocks (client-server: stripped state).
STRIPPED_STATE_KEYS = [
    ("m.room.create", ""),
    ("m.room.join_rules", ""),
    ("m.room.canonical_alias", ""),
    ("m.room.avatar", ""),
    ("m.room.name", ""),
    ("m.room.encryption", ""),
    ("m.room.topic", ""),
    # so an invited guest's server can tell whether the room admits guests
    (GUEST_ACCESS, ""),
]

# Called to join or knock on a room this server is not in (federation installs them).
RemoteJoin = Callable[[str, str, list[str], dict[str, Any]], Awaitable[str]]
# Called to leave a room this server is not in (reject a remote invite, retract a knock).
RemoteLeave = Callable[[str, str, dict[str, Any]], Awaitable[StoredEvent]]


def check_profile_fields(content: Mapping[str, Any]) -> None:
    """A per-room displayname or avatar_url a client puts in a member event: a string
    (or null) of at most the lengths a profile allows (400 M_BAD_JSON)."""
    for key, limit in (
        ("displayname", MAX_DISPLAYNAME_LENGTH),
        ("avatar_url", MAX_AVATAR_URL_LENGTH),
    ):
        value = content.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise BadJson(f"{key} must be a string")
        if len(value) > limit:
            raise BadJson(f"{key} is longer than {limit} characters")


class MembershipService:
    def __init__(
        self,
        server_name: str,
        stores: Stores,
        creator: EventCreator,
        appservices: AppServices | None = None,
        *,
        forget_rooms_on_leave: bool = False,
    ) -> None:
        self._server_name = server_name
        self._forget_on_leave = forget_rooms_on_leave
        self._stores = stores
        self._creator = creator
        self._appservices = appservices
        self.remote_join: RemoteJoin | None = None
        self.remote_knock: RemoteJoin | None = None
        self.remote_leave: RemoteLeave | None = None
        # Has a remote invitee's server sign an invite (s2s "Inviting to a room").
        self.remote_invite: Countersign | None = None
        # Called with the room ID after this server joined a room over federation
        # (a room upgrade's replacement brings its users' settings along).
        self.remote_join_hooks: list[Callable[[str], Awaitable[None]]] = []
        # Called with (user ID, room ID) before a user leaves a room or rejects an
        # invite themselves; raises to refuse (the server notices room).
        self.leave_checks: list[Callable[[str, str], Awaitable[None]]] = []

    def is_mine(self, user_id: str) -> bool:
        return server_name_of(user_id) == self._server_name

    async def _profile_content(self, user_id: str) -> dict[str, Any]:
        profile = await self._stores.accounts.get_profile(user_id)
        content: dict[str, Any] = {}
        if profile is not None:
            if profile[0] is not None:
                content["displayname"] = profile[0]
            if profile[1] is not None:
                content["avatar_url"] = profile[1]
        return content

    async def leave_all(self, user_id: str) -> None:
        """Leave every room the user is joined to, invited to or knocking on (a
        deactivated account, as Synapse; pending invites are rejected). A room that
        refuses the leave is logged and skipped."""
        rooms = dict(await self._stores.state.rooms_for_user(user_id))
        for room_id, membership in sorted(rooms.items()):
            if membership not in ("join", "invite", "knock"):
                continue
            try:
                await self.change(user_id, room_id, user_id, "leave")
            except MatrixError as exc:
                logger.warning("%s could not leave %s on deactivation: %s", user_id, room_id, exc)

    async def membership_of(self, room_id: str, user_id: str) -> str | None:
        state = await self._stores.state.get_current_state(room_id)
        event_id = state.get(("m.room.member", user_id))
        if event_id is None:
            return None
        stored = await self._stores.events.get_event(event_id)
        return None if stored is None else stored.event.membership

    async def join(
        self,
        user_id: str,
        room_id: str,
        *,
        reason: str | None = None,
        servers: list[str] | None = None,
        txn: TxnKey | None = None,
        third_party_signed: dict[str, Any] | None = None,
        extra_content: Mapping[str, Any] | None = None,
    ) -> StoredEvent | str:
        """Join a room; returns the join event (or the room ID after a remote join).

        ``extra_content``: more keys for the join event (the body of ``POST
        /join/{roomIdOrAlias}``, kept as Synapse keeps it); a displayname or
        avatar_url there is a per-room profile, otherwise the global one is used.
        """
        content = {
            k: v
            for k, v in (extra_content or {}).items()
            if k not in ("membership", "join_authorised_via_users_server", "third_party_signed")
        }
        check_profile_fields(content)
        for key, value in (await self._profile_content(user_id)).items():
            content.setdefault(key, value)
        if reason is not None:
            content["reason"] = reason
        await self._check_not_blocked(room_id)
        if not await self._stores.rooms.room_exists(room_id) or not await self._in_room(room_id):
            if self.remote_join is None:
                raise NotFound("Unknown room")
            await self._check_remote_guest_join(user_id, room_id)
            joined = await self.remote_join(user_id, room_id, servers or [], content)
            for hook in self.remote_join_hooks:
                try:
                    await hook(joined)
                except Exception:
                    logger.exception("after-remote-join hook failed for %s", joined)
            return joined
        await self._check_guest_join(user_id, room_id)
        content = {"membership": "join", **content}
        authoriser = await self._restricted_join_authoriser(user_id, room_id)
        if authoriser is not None:
            content["join_authorised_via_users_server"] = authoriser
        return await self._creator.send(
            room_id, "m.room.member", user_id, content, state_key=user_id, txn=txn
        )

    async def _check_not_blocked(self, room_id: str) -> None:
        """403 for a join or invite into a room a server admin blocked (admin API)."""
        if await self._stores.room_admin.is_blocked(room_id):
            raise Forbidden("This room has been blocked on this server")

    async def _is_guest(self, user_id: str) -> bool:
        if not self.is_mine(user_id):
            return False  # guests are a local concept (see homeserver/rooms/guest_access.py)
        record = await self._stores.accounts.get_user(user_id)
        return record is not None and record.is_guest

    async def _check_guest_join(self, user_id: str, room_id: str) -> None:
        """403 M_GUEST_ACCESS_FORBIDDEN for a guest joining a room (here) whose current
        state does not admit guests."""
        if not await self._is_guest(user_id):
            return
        state = await self._stores.state.get_current_state(room_id)
        access_id = state.get((GUEST_ACCESS, ""))
        access = await self._stores.events.get_event(access_id) if access_id else None
        if not guests_may_join(access.event.content if access is not None else None):
            raise Forbidden("Guest access not allowed", errcode="M_GUEST_ACCESS_FORBIDDEN")

    async def _check_remote_guest_join(self, user_id: str, room_id: str) -> None:
        """A guest joins a room this server is not in only when invited, and only if the
        invite's stripped state shows the room admitting guests (403
        M_GUEST_ACCESS_FORBIDDEN otherwise: its state cannot be known before joining)."""
        if not await self._is_guest(user_id):
            return
        invite_id = await self._stores.rooms.latest_membership_event_id(user_id, room_id)
        stripped = await self._stores.rooms.get_stripped_state(invite_id) if invite_id else []
        if not guests_may_join(guest_access_in_stripped(stripped)):
            raise Forbidden("Guest access not allowed", errcode="M_GUEST_ACCESS_FORBIDDEN")

    async def joined_rooms(self, user_id: str) -> list[str]:
        """The rooms ``user_id`` is joined to."""
        rooms = await self._stores.state.rooms_for_user(user_id)
        return [room_id for room_id, membership in rooms.items() if membership == "join"]

    async def mutual_rooms(
        self, user_id: str, other: str, from_token: str | None, limit: int = MUTUAL_ROOMS_PAGE
    ) -> tuple[list[str], int, str | None]:
        """``GET /mutual_rooms``: the rooms both users are joined to (by room ID), a
        page of them from ``from_token``, their count and the next page's token."""
        if other == user_id:
            raise InvalidParam("user_id must be another user than yourself")
        try:
            UserID.parse(other, strict=True)
        except InvalidIdentifier as exc:
            raise InvalidParam("The user ID provided was invalid") from exc
        start = 0
        if from_token is not None:
            if not (from_token.isascii() and from_token.isdigit()) or len(from_token) > 9:
                raise InvalidParam("Invalid from token")
            start = int(from_token)
        theirs = await self._stores.state.rooms_for_user(other)
        mutual = sorted(
            room_id for room_id in await self.joined_rooms(user_id) if theirs.get(room_id) == "join"
        )
        page = mutual[start : start + limit]
        following = str(start + limit) if start + limit < len(mutual) else None
        return page, len(mutual), following

    async def refresh_profile(self, user_id: str, _profile: Mapping[str, Any]) -> None:
        """After a change of ``user_id``'s displayname or avatar_url: a new join event
        carrying the new profile in every room they are joined to (client-server API,
        "Events on Change of Profile Information"). As in Synapse it replaces any
        per-room name or avatar; a room that refuses the event is skipped."""
        if not self.is_mine(user_id):
            return
        for room_id in sorted(await self.joined_rooms(user_id)):
            try:
                await self.join(user_id, room_id)
            except MatrixError as exc:
                logger.warning("profile of %s not updated in %s: %s", user_id, room_id, exc.message)

    async def creator_join(self, user_id: str, room_id: str) -> StoredEvent:
        """The creator's join right after m.room.create (createRoom step 2)."""
        content = {"membership": "join", **await self._profile_content(user_id)}
        return await self._creator.send(
            room_id, "m.room.member", user_id, content, state_key=user_id
        )

    async def joins_locally(self, room_id: str) -> bool:
        """Whether a join to the room is made here (``rc_joins.local``) rather than
        over federation (``rc_joins.remote``)."""
        return await self._stores.rooms.room_exists(room_id) and await self._in_room(room_id)

    async def _in_room(self, room_id: str) -> bool:
        """Whether any local user is joined (so this server can make events in the room)."""
        members = await self._stores.state.current_members(room_id)
        return any(m == "join" and self.is_mine(u) for u, m in members.items())

    async def join_authoriser(self, user_id: str, room_id: str) -> str | None:
        """The local user authorising ``user_id``'s restricted join (None: not needed);
        raises 403 / M_UNABLE_TO_AUTHORISE_JOIN (also answers remote make_join)."""
        return await self._restricted_join_authoriser(user_id, room_id)

    async def _restricted_join_authoriser(self, user_id: str, room_id: str) -> str | None:
        """For a restricted join, a local member who may invite, if the user qualifies."""
        rv = await self._creator.room_version(room_id)
        if not rv.restricted_joins:
            return None
        state = await self._stores.state.get_current_state(room_id)
        # Only the events read here, not the whole state (a big room's is huge).
        wanted = [("m.room.join_rules", ""), ("m.room.member", user_id)]
        wanted += [("m.room.create", ""), ("m.room.power_levels", "")]
        events = await self._creator.state_events({k: state[k] for k in wanted if k in state})
        join_rules = events.get(("m.room.join_rules", ""))
        rule = join_rules.content.get("join_rule") if join_rules is not None else None
        if rule not in ("restricted", "knock_restricted"):
            return None
        current = events.get(("m.room.member", user_id))
        if current is not None and current.membership in ("join", "invite"):
            return None
        allowed = False
        allow = join_rules.content.get("allow") if join_rules is not None else None
        for entry in allow if isinstance(allow, list) else []:
            if not isinstance(entry, dict) or entry.get("type") != "m.room_membership":
                continue
            other = entry.get("room_id")
            if isinstance(other, str) and await self.membership_of(other, user_id) == "join":
                allowed = True
                break
        if not allowed:
            raise Forbidden("You do not belong to any of the rooms required to join this room")
        levels = PowerLevels(
            events.get(("m.room.create", "")), events.get(("m.room.power_levels", "")), rv
        )
        # local members with the power to invite (a level needs no event), then the
        # member events of those alone
        candidates = {
            ("m.room.member", u): state[("m.room.member", u)]
            for (t, u) in state
            if t == "m.room.member" and self.is_mine(u) and levels.user_level(u) >= levels.invite
        }
        members = await self._creator.state_events(candidates)
        for _type, candidate in sorted(candidates):
            member = members.get(("m.room.member", candidate))
            if member is not None and member.membership == "join":
                return candidate
        raise MatrixError(
            400, "M_UNABLE_TO_AUTHORISE_JOIN", "No local user can authorise this join"
        )

    async def change(
        self,
        sender: str,
        room_id: str,
        target: str,
        membership: str,
        *,
        reason: str | None = None,
        is_direct: bool | None = None,
        txn: TxnKey | None = None,
    ) -> StoredEvent:
        """Invite, leave, kick (leave of another), ban, unban (leave of a banned user), knock."""
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Unknown room")
        if membership == "leave" and sender == target and not await self._in_room(room_id):
            left = await self._leave_from_outside(sender, room_id, reason)
            if left is not None:
                return left
        if membership == "invite":
            await self._check_not_blocked(room_id)
        if membership == "invite" and self.is_mine(target):
            await self._ask_appservices_about(target)
        content: dict[str, Any] = {"membership": membership}
        if membership in ("knock",) or (membership == "invite" and self.is_mine(target)):
            content.update(
                await self._profile_content(target if membership == "invite" else sender)
            )
        if reason is not None:
            content["reason"] = reason
        if is_direct is not None and membership == "invite":
            content["is_direct"] = is_direct
        return await self._send_member(sender, room_id, target, content, txn=txn)

    async def _ask_appservices_about(self, user_id: str) -> None:
        """An invite of a local user this server does not have, in an application
        service's user namespace, asks the service first (Application Service API
        "Querying": /_matrix/app/v1/users/{userId}), which may register it then."""
        if self._appservices is None or not self._appservices.interested_in_user(user_id):
            return
        if any(service.sender == user_id for service in self._appservices.services):
            return
        if await self._stores.accounts.get_user(user_id) is not None:
            return
        await self._appservices.query_user_exists(user_id)

    async def _leave_from_outside(
        self, user_id: str, room_id: str, reason: str | None
    ) -> StoredEvent | None:
        """Leave a room no local user is joined to: reject an invite, retract a knock.

        An invite from a local user (who has left since) is rejected in the room
        itself, whose state this server holds, and a user who left already gets the
        room's own answer: None (the caller sends the leave there). An invite or
        knock of another server goes through a resident server; if none takes it,
        the leave is made here alone (out of band), as Synapse does, so the user is
        never stuck with it. 404 if the user never had a membership in the room.
        """
        leave: dict[str, Any] = {"membership": "leave"}
        if reason is not None:
            leave["reason"] = reason
        latest_id = await self._stores.rooms.latest_membership_event_id(user_id, room_id)
        latest = await self._stores.events.get_event(latest_id) if latest_id else None
        if latest is None:
            raise NotFound("Not a known room")
        if latest.event.membership not in ("invite", "knock"):
            return None  # left or banned already: the room's rules answer (as Synapse)
        if (
            latest.event.membership == "invite"
            and self.is_mine(latest.event.sender)
            and not latest.outlier
        ):
            return None
        if self.remote_leave is None:
            return None
        try:
            return await self.remote_leave(user_id, room_id, dict(leave))
        except MatrixError as exc:
            logger.info(
                "no resident of %s took %s's leave (%s): leaving out of band",
                room_id,
                user_id,
                exc.message,
            )
            return await self._creator.out_of_band_leave(latest, leave)

    async def third_party_invite(
        self, sender: str, room_id: str, target: str, third_party_invite: dict[str, Any]
    ) -> StoredEvent:
        """The invite of ``target`` made from a third-party invite: ``sender`` (who sent
        the ``m.room.third_party_invite``, maybe a user of another server) is its
        sender, and the auth rules check ``third_party_invite.signed`` instead of the
        sender's membership."""
        content: dict[str, Any] = {"membership": "invite"}
        if self.is_mine(target):
            content.update(await self._profile_content(target))
        content["third_party_invite"] = third_party_invite
        return await self._send_member(sender, room_id, target, content)

    async def _send_member(
        self,
        sender: str,
        room_id: str,
        target: str,
        content: dict[str, Any],
        *,
        txn: TxnKey | None = None,
        origin_server_ts: int | None = None,
    ) -> StoredEvent:
        membership = content.get("membership")
        if membership == "leave" and sender == target:
            for check in self.leave_checks:
                await check(sender, room_id)
        stripped = None
        if membership in ("invite", "knock"):
            # and the sender's own membership, as Synapse gives (clients show the inviter)
            stripped = [*STRIPPED_STATE_KEYS, ("m.room.member", sender)]
        countersign = None
        if membership == "invite" and not self.is_mine(target):
            countersign = self.remote_invite
        return await self._creator.send(
            room_id,
            "m.room.member",
            sender,
            content,
            state_key=target,
            txn=txn,
            stripped_state_keys=stripped,
            countersign=countersign,
            origin_server_ts=origin_server_ts,
        )

    async def kick(
        self, sender: str, room_id: str, target: str, *, reason: str | None = None
    ) -> StoredEvent:
        """POST /rooms/{roomId}/kick: the target must be in the room (joined, invited, knocking)."""
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Unknown room")
        if await self.membership_of(room_id, target) not in ("join", "invite", "knock"):
            raise Forbidden("The target user is not in the room")
        return await self.change(sender, room_id, target, "leave", reason=reason)

    async def ban(
        self, sender: str, room_id: str, target: str, *, reason: str | None = None
    ) -> StoredEvent:
        """POST /rooms/{roomId}/ban: anyone may be banned, in the room or not."""
        return await self.change(sender, room_id, target, "ban", reason=reason)

    async def unban(
        self, sender: str, room_id: str, target: str, *, reason: str | None = None
    ) -> StoredEvent:
        """POST /rooms/{roomId}/unban: only a banned user can be unbanned."""
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Unknown room")
        if await self.membership_of(room_id, target) != "ban":
            raise Forbidden("The target user is not banned")
        return await self.change(sender, room_id, target, "leave", reason=reason)

    async def knock(
        self,
        user_id: str,
        room_id: str,
        *,
        reason: str | None = None,
        servers: list[str] | None = None,
    ) -> StoredEvent | str:
        """POST /knock/{roomIdOrAlias} (client-server: Knocking on rooms)."""
        if not await self._stores.rooms.room_exists(room_id) or not await self._in_room(room_id):
            if self.remote_knock is None:
                raise NotFound("Unknown room")
            content = await self._profile_content(user_id)
            if reason is not None:
                content["reason"] = reason
            return await self.remote_knock(user_id, room_id, servers or [], content)
        if await self.membership_of(room_id, user_id) in ("join", "invite", "ban"):
            raise Forbidden("You are already in, invited to or banned from this room")
        return await self.change(user_id, room_id, user_id, "knock", reason=reason)

    async def set_member_state(
        self,
        sender: str,
        room_id: str,
        target: str,
        content: dict[str, Any],
        *,
        origin_server_ts: int | None = None,
    ) -> StoredEvent:
        """PUT /rooms/{roomId}/state/m.room.member/{userId}: a member event as the client wrote it.

        Used for per-room display names and avatars, and for membership changes made
        through the state endpoint; restricted joins still get their authorising user.
        """
        if not await self._stores.rooms.room_exists(room_id):
            raise NotFound("Unknown room")
        content = dict(content)
        if content.get("membership") == "join" and target == sender:
            await self._check_guest_join(sender, room_id)
            content.pop("join_authorised_via_users_server", None)
            authoriser = await self._restricted_join_authoriser(sender, room_id)
            if authoriser is not None:
                content["join_authorised_via_users_server"] = authoriser
        return await self._send_member(
            sender, room_id, target, content, origin_server_ts=origin_server_ts
        )

    async def forget(self, user_id: str, room_id: str) -> None:
        """POST /rooms/{roomId}/forget: only once the user has left (or was banned)."""
        membership = await self.membership_of(room_id, user_id)
        if membership in ("join", "invite", "knock"):
            raise MatrixError(400, "M_UNKNOWN", f"User {user_id} is in room {room_id}")
        if membership is None:
            if not await self._stores.rooms.room_exists(room_id):
                raise NotFound("Unknown room")
            return  # never a member: nothing to forget
        await self._stores.rooms.forget_room(user_id, room_id)

    async def on_event_persisted(self, stored: StoredEvent) -> None:
        """After-persist hook: joining, being invited or knocking un-forgets a room;
        with ``forget_rooms_on_leave``, leaving it (or a kick or ban) forgets it."""
        event = stored.event
        if (
            event.type != "m.room.member"
            or event.state_key is None
            or stored.rejected_reason is not None
            or stored.outlier
            or not self.is_mine(event.state_key)
        ):
            return
        if event.membership in ("join", "invite", "knock"):
            async with self._stores.db.transaction("unforget_room") as t:
                await self._stores.rooms.unforget_room_txn(t, event.state_key, event.room_id)
        elif event.membership in ("leave", "ban") and self._forget_on_leave:
            await self._stores.rooms.forget_room(event.state_key, event.room_id)

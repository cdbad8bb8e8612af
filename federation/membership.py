"""Membership across servers, built once by the composition root: the resident
handshakes (:mod:`federation.joins`), invites both ways (:mod:`federation.invites`)
and the joining side (:mod:`federation.remote_join`), installed as the hooks of the
local ``MembershipService``; and their routes."""

from __future__ import annotations

from dataclasses import dataclass

from federation.auth import FederationAuthenticator
from federation.context import FederationContext
from federation.event_services import FederationEventServices
from federation.invites import InviteHandlers, RemoteInviter
from federation.joins import ResidentHandshakes
from federation.remote_join import RemoteMembership
from federation.routes import FEDERATION_V1, Route
from homeserver.rooms.lanes import RoomLanes
from homeserver.rooms.membership import MembershipService
from homeserver.rooms.persister import EventPersister

FEDERATION_V2 = "/_matrix/federation/v2"


@dataclass
class FederationMembership:
    resident: ResidentHandshakes
    invites: InviteHandlers
    inviter: RemoteInviter
    remote: RemoteMembership

    @classmethod
    def build(
        cls,
        fed: FederationContext,
        events: FederationEventServices,
        membership: MembershipService,
        persister: EventPersister,
        lanes: RoomLanes,
    ) -> FederationMembership:
        stores = fed.stores
        resident = ResidentHandshakes(
            fed.server_name,
            fed.signing_key,
            stores,
            events.acl,
            events.pipeline,
            events.sender,
            membership,
            fed.clock,
        )
        invites = InviteHandlers(
            fed.server_name,
            fed.signing_key,
            stores,
            events.acl,
            fed.keyring,
            events.pipeline,
            persister,
            lanes,
        )
        inviter = RemoteInviter(stores, fed.client, fed.keyring, fed.clock)
        remote = RemoteMembership(
            fed.server_name,
            fed.signing_key,
            stores,
            fed.client,
            events.pipeline,
            persister,
            lanes,
            fed.clock,
        )
        membership.remote_join = remote.join
        membership.remote_knock = remote.knock
        membership.remote_leave = remote.leave
        membership.remote_invite = inviter.countersign
        return cls(resident, invites, inviter, remote)


def membership_routes(auth: FederationAuthenticator, services: FederationMembership) -> list[Route]:
    """The membership handshake routes (all X-Matrix authenticated)."""
    a = auth.authenticated
    r = services.resident
    v1, v2 = FEDERATION_V1, FEDERATION_V2
    return [
        ("GET", f"{v1}/make_join/{{roomId}}/{{userId}}", a(r.on_make_join)),
        ("PUT", f"{v2}/send_join/{{roomId}}/{{eventId}}", a(r.on_send_join)),
        ("PUT", f"{v1}/send_join/{{roomId}}/{{eventId}}", a(r.on_send_join_v1)),
        ("GET", f"{v1}/make_leave/{{roomId}}/{{userId}}", a(r.on_make_leave)),
        ("PUT", f"{v2}/send_leave/{{roomId}}/{{eventId}}", a(r.on_send_leave)),
        ("PUT", f"{v1}/send_leave/{{roomId}}/{{eventId}}", a(r.on_send_leave_v1)),
        ("GET", f"{v1}/make_knock/{{roomId}}/{{userId}}", a(r.on_make_knock)),
        ("PUT", f"{v1}/send_knock/{{roomId}}/{{eventId}}", a(r.on_send_knock)),
        ("PUT", f"{v2}/invite/{{roomId}}/{{eventId}}", a(services.invites.on_invite)),
        ("PUT", f"{v1}/invite/{{roomId}}/{{eventId}}", a(services.invites.on_invite_v1)),
    ]

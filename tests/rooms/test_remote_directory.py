"""GET/POST /publicRooms?server=<another server>: its directory, asked over federation.

Client-server API "Published room directory" (``server``: "The server to fetch the
published room directory from"), answered through the server-server API "Published
Room Directory" (``GET``/``POST /_matrix/federation/v1/publicRooms``).
"""

from __future__ import annotations

from typing import Any

from tests.federation.servers import FederatingServer, ServerFactory, stop_listening
from tests.rooms.helpers import User, make_user


async def two_servers(federation_servers: ServerFactory) -> tuple[FederatingServer, ...]:
    """``a`` publishes its directory over federation; ``b`` does not (the default)."""
    a, b = await federation_servers(
        2, per_server=[{"allow_public_rooms_over_federation": True}, {}]
    )
    return a, b


async def listed(user: User, server: str, body: dict[str, Any] | None = None, **params: Any) -> Any:
    query = {"server": server, **{k: str(v) for k, v in params.items()}}
    if body is None:
        return await user.request("GET", "/publicRooms", params=query)
    return await user.request("POST", "/publicRooms", body, params=query)


async def test_remote_directory_is_asked_over_federation(
    federation_servers: ServerFactory,
) -> None:
    a, b = await two_servers(federation_servers)
    alice, bob = await make_user(a.harness, "alice"), await make_user(b.harness, "bob")
    cats = await alice.create_room(visibility="public", name="Cats", topic="all about cats")
    dogs = await alice.create_room(visibility="public", name="Dogs")
    await alice.create_room(name="Private")  # not published
    page = await listed(bob, a.server_name)
    assert {e["room_id"] for e in page["chunk"]} == {cats, dogs}
    assert page["total_room_count_estimate"] == 2
    by_id = {e["room_id"]: e for e in page["chunk"]}
    assert by_id[cats]["name"] == "Cats"
    assert by_id[cats]["topic"] == "all about cats"
    assert by_id[cats]["num_joined_members"] == 1
    # The answer is the remote server's own listing.
    assert page == await listed(alice, a.server_name)
    # POST with a filter goes to the remote server's POST endpoint, filter and all.
    found = await listed(bob, a.server_name, {"filter": {"generic_search_term": "CATS"}})
    assert [e["room_id"] for e in found["chunk"]] == [cats]
    # Paging with limit and since.
    first = await listed(bob, a.server_name, limit=1)
    assert len(first["chunk"]) == 1
    second = await listed(bob, a.server_name, limit=1, since=first["next_batch"])
    assert "next_batch" not in second
    assert {first["chunk"][0]["room_id"], second["chunk"][0]["room_id"]} == {cats, dogs}
    second_post = await listed(bob, a.server_name, {"limit": 1, "since": first["next_batch"]})
    assert second_post["chunk"] == second["chunk"]
    # Our own server name is answered locally.
    assert (await listed(bob, b.server_name))["chunk"] == []


async def test_remote_directory_errors(federation_servers: ServerFactory) -> None:
    a, b = await two_servers(federation_servers)
    alice, bob = await make_user(a.harness, "alice"), await make_user(b.harness, "bob")
    await bob.create_room(visibility="public", name="Bob's")
    # b does not publish its directory over federation: its 403 is passed on.
    err = await alice.request("GET", "/publicRooms", params={"server": b.server_name}, expect=403)
    assert err["errcode"] == "M_FORBIDDEN"
    err = await alice.request(
        "POST", "/publicRooms", {}, params={"server": b.server_name}, expect=403
    )
    assert err["errcode"] == "M_FORBIDDEN"
    # Not a server name at all.
    err = await bob.request("GET", "/publicRooms", params={"server": "not a server"}, expect=400)
    assert err["errcode"] == "M_INVALID_PARAM"
    # a unreachable: 502.
    await stop_listening(a)
    err = await bob.request("GET", "/publicRooms", params={"server": a.server_name}, expect=502)
    assert err["errcode"] == "M_UNKNOWN"

"""GET /timestamp_to_event/{roomId} and the /query/{queryType} catch-all over
federation."""

from __future__ import annotations

from tests.federation.rooms import share_room
from tests.federation.servers import ServerFactory
from tests.federation.test_reads import V1, get, q, status_of
from tests.rooms.helpers import make_user


async def test_timestamp_to_event_for_a_server_in_the_room(
    federation_servers: ServerFactory,
) -> None:
    a, b, c = await federation_servers(3)
    room_id, alice, _bob = await share_room(a, b)
    a.clock.advance(10)
    first = await alice.send(room_id, "first")
    first_ts = (await a.server.stores.events.get_event(first)).event.origin_server_ts
    a.clock.advance(10)
    second = await alice.send(room_id, "second")
    answer = await get(b, a, f"{V1}/timestamp_to_event/{q(room_id)}", ts=str(first_ts + 1), dir="f")
    second_ts = (await a.server.stores.events.get_event(second)).event.origin_server_ts
    assert answer == {"event_id": second, "origin_server_ts": second_ts}
    answer = await get(b, a, f"{V1}/timestamp_to_event/{q(room_id)}", ts=str(first_ts + 1), dir="b")
    assert answer["event_id"] == first
    path = f"{V1}/timestamp_to_event/{q(room_id)}"
    assert await status_of(get(b, a, path, ts=str(second_ts + 1), dir="f")) == (
        404,
        "M_NOT_FOUND",
    )
    # a server with nobody in the room, bad parameters, an unknown room
    assert await status_of(get(c, a, path, ts="0", dir="f")) == (403, "M_FORBIDDEN")
    assert await status_of(get(b, a, path, ts="0", dir="sideways")) == (400, "M_INVALID_PARAM")
    assert await status_of(get(b, a, path, dir="f")) == (400, "M_MISSING_PARAM")
    assert await status_of(get(b, a, path, ts="soon", dir="f")) == (400, "M_INVALID_PARAM")
    unknown = f"{V1}/timestamp_to_event/{q('!nowhere:' + a.server_name)}"
    assert await status_of(get(b, a, unknown, ts="0", dir="f")) == (404, "M_NOT_FOUND")


async def test_unknown_query_types_are_not_found(federation_servers: ServerFactory) -> None:
    a, b = await federation_servers(2)
    await make_user(a.harness, "alice")
    assert await status_of(get(b, a, f"{V1}/query/weather", city="Paris")) == (404, "M_NOT_FOUND")
    # the known ones still answer
    profile = await get(b, a, f"{V1}/query/profile", user_id=f"@alice:{a.server_name}")
    assert "displayname" in profile or profile == {}

"""Shadow-bans and rate-limit overrides, and what they do to the user's requests."""

from __future__ import annotations

from typing import Any

from tests.admin.users.helpers import V1, admin_and_user, call, error_of, user_path
from tests.conftest import HarnessFactory, HomeserverHarness

USER = "@user:test.local"
C = "/_matrix/client/v3"


async def ok(hs: HomeserverHarness, method: str, path: str, token: str, body: Any = None) -> Any:
    status, payload = await call(hs, method, path, token, body)
    assert status == 200, (path, payload)
    return payload


async def test_shadow_banned_users_get_fake_successes(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    await hs.register("friend")
    room_id = (await ok(hs, "POST", f"{C}/createRoom", admin, {"preset": "public_chat"}))["room_id"]
    await ok(hs, "POST", f"{C}/join/{room_id}", user, {})
    assert await call(hs, "POST", user_path(V1, USER, "/shadow_ban"), admin) == (200, {})
    _, queried = await call(hs, "GET", f"/_synapse/admin/v2/users/{USER}", admin)
    assert queried["shadow_banned"] is True
    stream_before = hs.server.client.persister.events_stream.current()
    sent = await ok(
        hs, "PUT", f"{C}/rooms/{room_id}/send/m.room.message/t1", user, {"body": "spam"}
    )
    assert sent["event_id"].startswith("$")
    assert await hs.server.stores.events.get_event(sent["event_id"]) is None
    state = await ok(hs, "PUT", f"{C}/rooms/{room_id}/state/m.room.topic/", user, {"topic": "x"})
    assert await hs.server.stores.events.get_event(state["event_id"]) is None
    await ok(hs, "POST", f"{C}/rooms/{room_id}/invite", user, {"user_id": "@friend:test.local"})
    assert room_id not in await hs.server.stores.state.rooms_for_user("@friend:test.local")
    created = await ok(hs, "POST", f"{C}/createRoom", user, {"invite": ["@friend:test.local"]})
    assert created["room_id"] not in await hs.server.stores.state.rooms_for_user(
        "@friend:test.local"
    )
    # nothing reached the room others read (the room creation is the user's own)
    assert hs.server.client.persister.events_stream.current() > stream_before
    messages = await ok(hs, "GET", f"{C}/rooms/{room_id}/messages?dir=b&limit=50", admin)
    assert all(e.get("content", {}).get("body") != "spam" for e in messages["chunk"])
    assert all(e["type"] != "m.room.topic" for e in messages["chunk"])
    # lifted: the user's messages go through again
    assert await call(hs, "DELETE", user_path(V1, USER, "/shadow_ban"), admin) == (200, {})
    real = await ok(
        hs, "PUT", f"{C}/rooms/{room_id}/send/m.room.message/t2", user, {"body": "sorry"}
    )
    assert await hs.server.stores.events.get_event(real["event_id"]) is not None


async def test_ratelimit_override(make_homeserver: HarnessFactory) -> None:
    hs = await make_homeserver(rc_message={"per_second": 0.001, "burst_count": 2})
    admin, user = await admin_and_user(hs)
    room_id = (await ok(hs, "POST", f"{C}/createRoom", user, {}))["room_id"]
    path = user_path(V1, USER, "/override_ratelimit")

    async def send(n: int) -> int:
        status, _ = await call(
            hs, "PUT", f"{C}/rooms/{room_id}/send/m.room.message/x{n}", user, {"body": "b"}
        )
        return status

    assert [await send(i) for i in range(3)] == [200, 200, 429]
    assert await call(hs, "GET", path, admin) == (200, {})
    assert await call(hs, "POST", path, admin, {}) == (
        200,
        {"messages_per_second": 0, "burst_count": 0},
    )
    assert await call(hs, "GET", path, admin) == (
        200,
        {"messages_per_second": 0, "burst_count": 0},
    )
    assert [await send(i) for i in range(10, 20)] == [200] * 10  # 0/0: no limit at all
    assert await call(hs, "POST", path, admin, {"messages_per_second": 1, "burst_count": 5}) == (
        200,
        {"messages_per_second": 1, "burst_count": 5},
    )
    # the bucket refills at the user's own rate (rc_message's would give 0.01 in 10 s)
    hs.clock.advance(10)
    assert [await send(i) for i in range(20, 26)] == [200] * 5 + [429]
    hs.clock.advance(1)
    assert await send(30) == 200
    for body in ({"messages_per_second": -1}, {"burst_count": "many"}, {"burst_count": 1.5}):
        assert await error_of(hs, "POST", path, admin, body) == (400, "M_INVALID_PARAM")
    assert (await call(hs, "GET", path, admin))[1] == {"messages_per_second": 1, "burst_count": 5}
    assert await call(hs, "DELETE", path, admin) == (200, {})
    assert await call(hs, "GET", path, admin) == (200, {})
    assert await send(40) == 429  # back to rc_message's (empty) bucket


async def test_suspended_users_may_read_but_not_act(hs: HomeserverHarness) -> None:
    admin, user = await admin_and_user(hs)
    room_id = (await ok(hs, "POST", f"{C}/createRoom", admin, {"preset": "public_chat"}))["room_id"]
    await ok(hs, "POST", f"{C}/join/{room_id}", user, {})
    own = (
        await ok(hs, "PUT", f"{C}/rooms/{room_id}/send/m.room.message/o1", user, {"body": "mine"})
    )["event_id"]
    others = (
        await ok(
            hs, "PUT", f"{C}/rooms/{room_id}/send/m.room.message/a1", admin, {"body": "theirs"}
        )
    )["event_id"]
    path = f"{V1}/suspend/{USER}"
    assert await call(hs, "PUT", path, admin, {"suspend": True}) == (
        200,
        {f"user_{USER}_suspended": True},
    )
    _, queried = await call(hs, "GET", f"/_synapse/admin/v2/users/{USER}", admin)
    assert queried["suspended"] is True
    suspended = (403, "M_USER_SUSPENDED")
    send = f"{C}/rooms/{room_id}/send/m.room.message/s1"
    assert await error_of(hs, "PUT", send, user, {"body": "x"}) == suspended
    assert (
        await error_of(hs, "PUT", f"{C}/rooms/{room_id}/state/m.room.topic/", user, {"topic": "t"})
        == suspended
    )
    assert await error_of(hs, "POST", f"{C}/createRoom", user, {}) == suspended
    assert await error_of(hs, "POST", f"{C}/join/{room_id}", user, {}) == suspended
    assert (
        await error_of(
            hs, "POST", f"{C}/rooms/{room_id}/invite", user, {"user_id": "@admin:test.local"}
        )
        == suspended
    )
    assert (
        await error_of(hs, "PUT", f"{C}/profile/{USER}/displayname", user, {"displayname": "z"})
        == suspended
    )
    # redactions: their own events only (as Synapse), by either path
    redact = f"{C}/rooms/{room_id}/redact"
    assert await error_of(hs, "PUT", f"{redact}/{others}/r1", user, {}) == suspended
    redaction = {"redacts": others}
    assert (
        await error_of(hs, "PUT", f"{C}/rooms/{room_id}/send/m.room.redaction/r2", user, redaction)
        == suspended
    )
    assert (await call(hs, "PUT", f"{redact}/{own}/r3", user, {}))[0] == 200
    # reading still works
    assert (await call(hs, "GET", f"{C}/rooms/{room_id}/messages?dir=b", user))[0] == 200
    assert await error_of(hs, "PUT", path, admin, {"suspend": "yes"}) == (400, "M_BAD_JSON")
    assert await error_of(hs, "PUT", path, admin, {}) == (400, "M_MISSING_PARAM")
    assert await call(hs, "PUT", path, admin, {"suspend": False}) == (
        200,
        {f"user_{USER}_suspended": False},
    )
    assert (await call(hs, "PUT", send, user, {"body": "x"}))[0] == 200
